"""Start-up stays light: commands that do not need heavy libraries never import them.

Checked in a fresh interpreter through `sys.modules` (never timed): `import labctl`,
`labctl --help`, `labctl ls` and `labctl validate` must not load matplotlib, scipy,
pandas or any real-hardware driver stack; `labctl run` on the simulated bench must not
load pandas, matplotlib or scipy (it writes Parquet with pyarrow alone), nor `show` and
`ls` of the finished run (`show` not even pyarrow or numpy: it reads the run's digest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "scipy", "pandas", "pyvisa", "pymeasure", "can", "cantools", "serial")

_PROBE = """
import json, sys
from labctl.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def _modules(*args: str, cwd: Path = REPO) -> set[str]:
    """Every module (dotted names too) loaded by `labctl ARGS` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES=")]
    assert line, proc.stdout + proc.stderr
    return set(json.loads(line[-1][len("MODULES="):]))


def _top_modules(*args: str, cwd: Path = REPO) -> set[str]:
    return {m for m in _modules(*args, cwd=cwd) if "." not in m}


def test_import_labctl_is_light():
    proc = subprocess.run([sys.executable, "-c", "import json, sys, labctl; "
                           "print(json.dumps(sorted(sys.modules)))"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    loaded = {m.split(".")[0] for m in json.loads(proc.stdout)}
    assert not loaded & set(HEAVY)
    assert not any(m.startswith("labctl.") for m in json.loads(proc.stdout))


@pytest.mark.parametrize("args", [["--help"], ["ls", "--results", "no-such-folder"],
                                  ["status", "--results", "no-such-folder"],
                                  ["validate", "procedures/quickstart.yaml"]])
def test_light_commands_do_not_import_heavy_libraries(args):
    loaded = _top_modules(*args)
    assert "labctl" in loaded  # the probe really ran the command
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_simulated_run_does_not_import_pandas_scipy_or_matplotlib(tmp_path):
    loaded = _top_modules("run", "procedures/quickstart.yaml", "--results", str(tmp_path),
                          "--no-progress")
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert (run_dir / "timeseries.parquet").is_file()  # the run happened, tables written
    # On Linux a child process writes the Parquet files (store/table_writer.py).
    assert ("pyarrow" in loaded) != sys.platform.startswith("linux")
    assert not loaded & {"pandas", "scipy", "matplotlib"}
    for args in (["show", str(run_dir)], ["show", str(run_dir), "--json"],
                 ["ls", "--results", str(tmp_path)]):
        loaded = _top_modules(*args)
        assert "labctl" in loaded
        assert not loaded & set(HEAVY), (args, sorted(loaded & set(HEAVY)))
        if args[0] == "show":  # the run's digest has its summary and steps: no Parquet read
            assert not loaded & {"pyarrow", "numpy"}, (args, sorted(loaded & {"pyarrow", "numpy"}))


# Loaded only for the inputs that need them: a .py procedure, a typo to suggest a word
# for, a spectrum to simulate, a cell table in a CSV file.
_NOT_FOR_A_CYCLING_YAML_RUN = ("labctl.procedures.python_proc", "labctl.suggest",
                               "labctl.sim.impedance", "labctl.cells.impedance_spec", "csv")


def test_a_cycling_yaml_run_skips_the_modules_other_inputs_need(tmp_path):
    loaded = _modules("run", "procedures/quickstart.yaml", "--results", str(tmp_path),
                      "--no-progress")
    assert any(p.is_dir() for p in tmp_path.iterdir())  # the run happened
    # The default station's potentiostat was built (it makes its impedance model later)
    # and the procedure was compiled: what is absent was really not needed.
    assert {"labctl.sim.potentiostat", "labctl.procedures.compiler"} <= loaded
    assert not loaded & set(_NOT_FOR_A_CYCLING_YAML_RUN), sorted(
        loaded & set(_NOT_FOR_A_CYCLING_YAML_RUN))


def test_python_procedure_names_stay_importable_from_the_package():
    probe = ("import sys; import labctl.procedures as p; "
             "assert 'labctl.procedures.python_proc' not in sys.modules; "
             "from labctl.procedures import ProcedureContext, load_python_procedure; "
             "from labctl.procedures.python_proc import ProcedureContext as C; "
             "assert ProcedureContext is C and callable(load_python_procedure); "
             "assert 'ProcedureContext' in p.__all__; print('ok')")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_help_lists_every_command_without_importing_it():
    from labctl.cli import COMMANDS

    loaded = _top_modules("--help")
    assert "labctl" in loaded
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


def test_status_does_not_import_numpy_or_the_engine(tmp_path):
    """`labctl status` only reads run.json and each active run's status file."""
    loaded = _top_modules("status", "--results", str(tmp_path))
    assert "labctl" in loaded and "numpy" not in loaded


def test_a_simulated_run_with_its_noise_table_kept_does_not_import_numpy_random(tmp_path):
    """The simulator draws its raw noise offsets and snapshots its generators in Python
    (sim/pcg64.py), and the `labctl` command reads the noise table from its cache: the
    second run imports no numpy.random (6-10 ms). Nor OpenSSL through hashlib (~3 ms):
    its digests come from CPython's own BLAKE2b and SHA-256 (labctl/hashes.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    seen = []
    for k in range(2):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "labctl.cli", "run",
                               "procedures/quickstart.yaml", "--results", str(tmp_path / f"r{k}"),
                               "--no-progress"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "labctl.sim.cycler" in imported  # the probe saw the run's imports
        seen.append("numpy.random" in imported)
    assert seen == [True, False]  # the first run made the table (numpy.random), kept it
    assert not imported & {"hashlib", "_hashlib"}, sorted(imported & {"hashlib", "_hashlib"})
