"""`labctl run` keeps "within the ceilings" for inputs it has planned (plan/verdicts.py):
the same inputs are not planned again, and any change to them -- above all one that
takes the procedure past a ceiling -- is planned and refused as before."""

from __future__ import annotations

import marshal
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

import labctl.plan as plan
from labctl.engine.prepare import prepare
from labctl.errors import LabctlError
from labctl.plan import Ceilings, enforce_ceilings, verdicts
from tests.plan.conftest import write
from tests.support import REPO, labctl_cmd

STATION = REPO / "instruments" / "sim.yaml"
# Untimed steps: the text alone bounds it only by the channel's 30 days a step (600 days,
# past the one-year ceiling), so the check plans it (~28 h).
CYCLES = """\
name: verdict-check
parameters:
  n: {default: 10, min: 1, max: 1000000000000, type: int}
steps:
  - repeat: "{n}"
    steps:
      - Discharge at 1C until 3.2 V
      - Charge at 1C until 4.1 V
"""


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A verdict cache in tmp_path, used as the labctl command's own would be; and a
    count of the plans made."""
    cache = verdicts.VerdictCache(tmp_path / "cache")
    monkeypatch.setattr(verdicts, "ACTIVE", cache)
    plans = []
    real = plan.plan_prepared

    def counted(*args, **kwargs):
        plans.append(args[0].procedure.name)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan, "plan_prepared", counted)
    return cache, plans


def _inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The procedure, a copy of the NMC cell file and of the station, to edit."""
    cell = tmp_path / "cell.yaml"
    shutil.copy(REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml", cell)
    station = tmp_path / "station.yaml"
    shutil.copy(STATION, station)
    return write(tmp_path, "verdict-check", CYCLES), cell, station


def _check(proc: Path, cell: Path, station: Path, **params: str) -> None:
    prep = prepare(proc, station_path=station, cell_ref=cell, params=params)
    enforce_ceilings(prep, need_report=False)  # raises past a ceiling


def test_inputs_that_passed_are_not_planned_again_even_by_a_new_process(tmp_path, kept,
                                                                      monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as for a user's command
    cache, plans = kept
    proc, cell, station = _inputs(tmp_path)
    _check(proc, cell, station)
    _check(proc, cell, station)
    assert plans == ["verdict-check"]  # planned once
    cache.save()
    again = verdicts.VerdictCache(tmp_path / "cache")  # what the next command reads
    prep = prepare(proc, station_path=station, cell_ref=cell)
    assert again.passed(verdicts.inputs_key(prep, Ceilings()))


def test_a_parameter_past_the_ceilings_is_refused_after_a_pass(tmp_path, kept):
    _, plans = kept
    proc, cell, station = _inputs(tmp_path)
    _check(proc, cell, station, n="10")
    prep = prepare(proc, station_path=station, cell_ref=cell, params={"n": "10000000"})
    with pytest.raises(LabctlError, match="refused: it would run"):  # ~2,000 years
        enforce_ceilings(prep, need_report=False)
    assert len(plans) == 2


@pytest.mark.parametrize("what", ["procedure", "cell", "station", "parameter"])
def test_any_change_to_the_inputs_plans_again(tmp_path, kept, what):
    _, plans = kept
    proc, cell, station = _inputs(tmp_path)
    _check(proc, cell, station)
    params = {}
    if what == "procedure":
        proc.write_text(CYCLES.replace("until 3.2 V", "until 3.3 V"))
    elif what == "cell":
        cell.write_text(cell.read_text().replace("capacity_ah: 1.95", "capacity_ah: 1.90"))
    elif what == "station":
        station.write_text(station.read_text().replace("max_current_a: 20.0",
                                                       "max_current_a: 19.0"))
    else:
        params = {"n": "11"}
    _check(proc, cell, station, **params)
    assert len(plans) == 2
    _check(proc, cell, station, **params)  # and that one is kept in turn
    assert len(plans) == 2


@pytest.fixture
def one_module(tmp_path, monkeypatch):
    """labctl's code as one module file, pkg/sim.py, in tmp_path."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "sim.py").write_text("x = 1\n")
    monkeypatch.setattr(verdicts, "_labctl_root", lambda: str(root))
    monkeypatch.setattr(verdicts, "_loaded_modules", lambda: ("sim.py",))
    return root / "sim.py"


LATER_NS = time.time_ns() + 3_600 * 10**9  # a check that started well after the edits


def test_a_change_to_labctl_s_code_drops_the_verdict(tmp_path, one_module):
    """Even one that keeps the file's size and modification time (cp -p, rsync -a)."""
    cache = verdicts.VerdictCache(tmp_path / "cache")
    key = b"k" * 16
    cache.keep(key, LATER_NS)
    assert cache.passed(key)
    before = one_module.stat()
    one_module.write_text("x = 2\n")  # the same size
    os.utime(one_module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert one_module.stat().st_size == before.st_size
    assert one_module.stat().st_mtime_ns == before.st_mtime_ns
    assert not cache.passed(key)
    assert not cache.passed(key)  # and it is gone


def test_code_changed_while_it_was_checked_keeps_nothing(tmp_path, one_module):
    cache = verdicts.VerdictCache(tmp_path / "cache")
    cache.keep(b"k" * 16, time.time_ns())  # the module was written just now
    assert not cache.passed(b"k" * 16)


def test_the_most_recently_used_verdicts_are_kept(tmp_path, one_module):
    cache = verdicts.VerdictCache(tmp_path / "cache")
    keys = [bytes([k]) * 16 for k in range(verdicts.MAX_ENTRIES + 1)]
    for key in keys[:-1]:
        cache.keep(key, LATER_NS)
    assert cache.passed(keys[0])  # used again: now the most recent
    cache.keep(keys[-1], LATER_NS)  # one too many: the least recently used goes
    assert cache.passed(keys[0]) and not cache.passed(keys[1])


def test_a_clear_pass_only_is_kept(tmp_path, kept):
    """Within 20 % of a ceiling the full plan decides, and a refusal is planned again."""
    cache, plans = kept
    proc, cell, station = _inputs(tmp_path)
    prep = prepare(proc, station_path=station, cell_ref=cell)
    report = plan.plan_prepared(prep, rough=True)
    near = Ceilings(duration_s=report.duration_s * 1.1)
    assert enforce_ceilings(prep, need_report=False, ceilings=near) is not None
    low = Ceilings(duration_s=report.duration_s * 0.5)
    for _ in range(2):
        with pytest.raises(LabctlError, match="refused"):
            enforce_ceilings(prep, need_report=False, ceilings=low)
    assert not cache._entries


def test_python_procedures_and_other_packages_plugins_are_never_kept(tmp_path, kept):
    proc, cell, station = _inputs(tmp_path)
    prep = prepare(proc, station_path=station, cell_ref=cell)
    assert verdicts.inputs_key(prep, Ceilings()) is not None
    item = prep.registry.all()[0]
    foreign = type(item)(item.kind, "foreign", "entry point: someones-plugin 1.0", item.info)
    prep.registry.items[item.kind]["foreign"] = foreign
    try:
        assert verdicts.inputs_key(prep, Ceilings()) is None
    finally:
        del prep.registry.items[item.kind]["foreign"]  # the registry is cached per process
    prep = prepare(REPO / "procedures" / "examples" / "ramp.py", station_path=station,
                   cell_ref=cell)
    assert prep.procedure.extra.get("tree") is None  # a generator written by hand
    assert verdicts.inputs_key(prep, Ceilings()) is None


def _cli_run(tmp_path: Path, proc: Path, cache: Path, **env: str):
    return labctl_cmd("run", str(proc), "--station", str(STATION), "--cell", "nmc-1p95ah",
                      "--results", str(tmp_path / "results"), "--no-progress",
                      env={"XDG_CACHE_HOME": str(cache), **env}, timeout=120)


def test_the_command_keeps_verdicts_and_skips_the_planner_for_them(tmp_path):
    proc = write(tmp_path, "verdict-check", CYCLES)
    cache = tmp_path / "xdg"
    first = _cli_run(tmp_path, proc, cache, PYTHONDONTWRITEBYTECODE="")
    assert first.returncode == 0, first.stderr[-2000:]
    _, sets, entries = marshal.loads((cache / "labctl" / "ceilings" / verdicts.FILE_NAME)
                                     .read_bytes())
    assert len(entries) == 1 and "plan/walk.py" in sets[0]
    # The second run finds the verdict: the planner is never imported.
    second = _cli_run(tmp_path, proc, cache, PYTHONDONTWRITEBYTECODE="", PYTHONPROFILEIMPORTTIME="1")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "labctl.sim.cycler" in second.stderr  # the import listing is there
    assert "labctl.plan.walk" not in second.stderr
    # Made writable by others, the file is not trusted: planned again.
    os.chmod(cache / "labctl" / "ceilings" / verdicts.FILE_NAME, 0o666)
    third = _cli_run(tmp_path, proc, cache, PYTHONPROFILEIMPORTTIME="1")
    assert third.returncode == 0 and "labctl.plan.walk" in third.stderr


def test_nothing_is_written_under_pythondontwritebytecode(tmp_path):
    proc = write(tmp_path, "verdict-check", CYCLES)
    ran = _cli_run(tmp_path, proc, tmp_path / "xdg", PYTHONDONTWRITEBYTECODE="1")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert not (tmp_path / "xdg" / "labctl" / "ceilings").exists()


def test_a_change_in_a_cell_s_csv_table_plans_again(tmp_path, kept):
    """The cell as loaded is keyed, its tables with it (the CSV, not only the YAML)."""
    _, plans = kept
    proc, cell, station = _inputs(tmp_path)
    text = cell.read_text()
    start = text.index("  ocv_v:")
    end = text.index("  r0_ohm:")
    soc = [0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0]
    ocv = [2.70, 3.05, 3.30, 3.45, 3.51, 3.56, 3.62, 3.66, 3.71, 3.79, 3.88, 3.97, 4.07, 4.12,
           4.18]
    table = tmp_path / "ocv.csv"
    table.write_text("soc,ocv_v\n" + "".join(f"{s},{v}\n" for s, v in zip(soc, ocv, strict=True)))
    cell.write_text(text[:start] + "  ocv_v: {csv: ocv.csv, column: ocv_v}\n" + text[end:])
    _check(proc, cell, station)
    _check(proc, cell, station)
    assert len(plans) == 1
    table.write_text("soc,ocv_v\n" + "".join(f"{s},{v - 0.01}\n" for s, v in zip(soc, ocv, strict=True)))
    _check(proc, cell, station)
    assert len(plans) == 2


def test_a_comment_in_the_station_file_changes_nothing_but_a_channel_does(tmp_path, kept):
    """What was loaded is keyed, not the file's bytes."""
    from labctl.engine.multi import on_channel

    _, plans = kept
    proc, cell, station = _inputs(tmp_path)
    _check(proc, cell, station)
    station.write_text(station.read_text() + "\n# a comment\n")
    _check(proc, cell, station)
    assert len(plans) == 1
    prep = prepare(proc, station_path=station, cell_ref=cell)
    enforce_ceilings(on_channel(prep, "2"), need_report=False)
    assert len(plans) == 2


@pytest.mark.parametrize("what", ["profile", "plugin file", "plugin file of no items",
                                  "calorimeter station"])
def test_what_reads_files_of_its_own_is_never_kept(tmp_path, what):
    """A profile's CSV, a plugin file and its imports, a simulated calorimeter's preset:
    not in the key, so nothing is kept for them."""
    proc, cell, station = _inputs(tmp_path)
    if what == "profile":
        (tmp_path / "p.csv").write_text("time_s,current_a\n0,-1.0\n60,-0.5\n")
        proc.write_text(CYCLES.replace("      - Charge at 1C until 4.1 V\n",
                                       "      - Charge at 1C until 4.1 V\n"
                                       "      - profile: {file: p.csv}\n"))
    elif what == "calorimeter station":
        station = REPO / "instruments" / "sim-abuse.yaml"
    elif what == "plugin file of no items":  # it could still patch a module as it loads
        (tmp_path / "patch.py").write_text("import labctl.sim.cycler  # noqa: F401\n")
        station.write_text(station.read_text() + "plugins: [patch.py]\n")
    prep = prepare(proc, station_path=station, cell_ref=cell)
    if what == "plugin file":  # as a station's `plugins:` file registers its items
        item = prep.registry.all()[0]
        local = type(item)(item.kind, "local", "file: /lab/plugins/my_steps.py", item.info)
        prep.registry.items[item.kind]["local"] = local
    try:
        assert not verdicts.keepable(prep)
        assert verdicts.inputs_key(prep, Ceilings()) is None
    finally:
        if what == "plugin file":  # the registry is cached per process
            del prep.registry.items[item.kind]["local"]


def test_near_the_samples_ceiling_or_cut_by_the_budget_is_not_kept(tmp_path, kept,
                                                                    monkeypatch):
    cache, plans = kept
    proc, cell, station = _inputs(tmp_path)
    prep = prepare(proc, station_path=station, cell_ref=cell)
    report = plan.plan_prepared(prep, rough=True)
    near = Ceilings(samples=report.run_samples * 1.1)
    enforce_ceilings(prep, need_report=False, ceilings=near)
    assert not cache._entries
    monkeypatch.setattr(plan, "CHECK_BUDGET_S", 0.0)  # cut at once: "truncated"
    enforce_ceilings(prep, need_report=False)
    assert not cache._entries


def test_a_damaged_or_planted_cache_file_only_means_planning(tmp_path, kept):
    """Bad module names (a NUL, a path out of labctl), a link, a FIFO: no crash, no hang,
    no pass."""
    cache, plans = kept
    proc, cell, station = _inputs(tmp_path)
    prep = prepare(proc, station_path=station, cell_ref=cell)
    key = verdicts.inputs_key(prep, Ceilings())
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    path = folder / verdicts.FILE_NAME
    for sets in ([("plan/walk.py\0",)], [("../../elsewhere.py",)], [("/etc/passwd",)]):
        path.write_bytes(marshal.dumps((verdicts.FORMAT, sets, {key: (0, b"x" * 16)})))
        os.chmod(path, 0o600)
        assert not verdicts.VerdictCache(folder).passed(key)
    path.unlink()
    elsewhere = tmp_path / "elsewhere.marshal"
    elsewhere.write_bytes(marshal.dumps((verdicts.FORMAT, [], {})))
    path.symlink_to(elsewhere)
    assert not verdicts.VerdictCache(folder).passed(key)
    path.unlink()
    os.mkfifo(path, 0o600)
    assert not verdicts.VerdictCache(folder).passed(key)  # returns: opened without waiting
    enforce_ceilings(prep, need_report=False)
    assert plans == ["verdict-check"]
