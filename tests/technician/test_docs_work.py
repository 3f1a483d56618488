"""The docs work as written: the README's quickstart snippet is the shipped file, its
run-id example has the shape labctl writes, every `labctl run/validate` line of the README
and docs/ validates, the stations they name exist, and gitt.yaml gives valid pulses."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.support import REPO, json_out, labctl_cmd

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_CMD = re.compile(r"labctl (?:run|validate) ([^`#|;\\&\n]*)")
# Options of `labctl run` that `validate` has no use for (they take a value, or not).
_DROP_VALUE = {"--results", "--speed", "--processes", "--channel"}
_DROP_FLAG = {"--no-progress", "--json"}


def _doc_commands() -> list[tuple[str, list[str]]]:
    found = {}
    for doc in DOCS:
        for m in _CMD.finditer(doc.read_text(encoding="utf-8")):
            args = shlex.split(m.group(1))
            if not args or not args[0].endswith((".yaml", ".py")):
                continue  # --batch, --channel ... alone, or a placeholder such as PROC
            if any(a.isupper() or "..." in a or a.startswith("[") or "RUN/" in a for a in args):
                continue
            kept, skip = [], False
            for a in args:
                if skip:
                    skip = False
                elif a in _DROP_VALUE:
                    skip = True
                elif a not in _DROP_FLAG:
                    kept.append(a)
            if "--station" in kept and kept.index("--station") == len(kept) - 1:
                continue  # the line goes on in the doc; the station is on the next line
            found[" ".join(kept)] = (doc.name, kept)
    return sorted(found.values(), key=lambda x: " ".join(x[1]))


COMMANDS = _doc_commands()


def test_the_docs_have_commands_to_check():
    names = {" ".join(c) for _, c in COMMANDS}
    assert any("bench-a.yaml" in n for n in names)
    assert any("example-keithley-simserve.yaml" in n for n in names)
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("doc", "args"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_each_documented_command_validates(doc, args, monkeypatch):
    """What `labctl validate` does with these arguments, in-process (fast)."""
    from labctl.engine.session import prepare
    from labctl.errors import LabctlError

    monkeypatch.chdir(REPO)
    procedure, options = args[0], {"--station": None, "--cell": None}
    params = {}
    rest = iter(args[1:])
    for a in rest:
        value = next(rest)
        if a == "--param":
            name, _, v = value.partition("=")
            params[name] = v
        else:
            assert a in options, f"{doc}: unexpected option {a} in labctl run {' '.join(args)}"
            options[a] = value
    try:
        prepare(procedure, station_path=options["--station"], cell_ref=options["--cell"],
                params=params)
    except LabctlError as exc:
        pytest.fail(f"{doc}: labctl validate {' '.join(args)}: {exc}")


def test_readme_quickstart_snippet_is_the_shipped_file():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "name: quickstart" in b)
    shipped = yaml.safe_load((REPO / "procedures" / "quickstart.yaml").read_text())
    shipped.pop("description", None)
    assert yaml.safe_load(block) == shipped


def test_readme_run_id_example_has_the_shape_labctl_writes(tmp_path):
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(tmp_path), "--json")
    real = json_out(proc)["run_dir"].rsplit("/", 1)[-1]
    text = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r'open_run\("results/([^"]+)"\)', text).group(1)

    def shape(run_id: str) -> str:
        return re.sub(r"^\d{8}-\d{6}-|-[0-9a-f]{4}$", "<>", run_id)

    assert shape(example) == shape(real)
    # The prefix shown for `labctl show` is a prefix of that example.
    prefix = re.search(r"labctl show (\S+)", text).group(1)
    assert example.startswith(prefix)


def test_stations_named_in_the_docs_exist():
    for doc in DOCS:
        for name in re.findall(r"instruments/[\w.-]+\.yaml", doc.read_text(encoding="utf-8")):
            assert (REPO / name).is_file(), f"{doc.name} names {name}"


def test_analyze_soc_in_the_readme_gives_its_required_cell_file():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for line in re.findall(r"labctl analyze soc [^`|]*", text):
        assert "--cell-file" in line, line


@pytest.mark.parametrize("cell", ["lfp-2p2ah", "nmc-1p95ah"])
def test_shipped_gitt_gives_mostly_valid_pulses(tmp_path, cell):
    proc = labctl_cmd("run", "procedures/gitt.yaml", "--cell", cell, "--results", str(tmp_path),
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    proc = labctl_cmd("analyze", "gitt", str(run), "--no-plots", "--json")
    summary = json_out(proc)["summary"]
    assert summary["n_pulses"] >= 50  # full to empty in small pulses
    assert summary["n_valid"] >= 0.5 * summary["n_pulses"], summary
