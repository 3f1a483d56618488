"""Start-up stays light: commands that do not need heavy libraries never import them.

Checked in a fresh interpreter through `sys.modules` (never timed), through the real
entry point `labctl.cli:console` (the console script; `python -m labctl.cli` calls it
too). `import labctl`, `labctl --help`, `ls`, `show` and `status` load no heavy library,
no driver, no simulator and no plugin registry; `labctl validate` simulates on the default
bench's twin but loads no heavy library and no real-hardware driver; `labctl run` on the
simulated bench loads neither pandas, matplotlib nor scipy (it writes Parquet with pyarrow
alone), and `show` of the finished run not even pyarrow or numpy (it reads the digest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
HEAVY = frozenset({"matplotlib", "scipy", "pandas", "pybamm", "pyvisa", "pymeasure", "can",
                   "cantools", "serial"})

# labctl/drivers/, every module classified (test_every_driver_module_is_classified keeps
# this complete, so a new driver module has to be placed in one or the other).
REAL_HARDWARE_DRIVERS = frozenset({
    "espec", "keithley_2281s", "keithley_smu", "lcr", "pressure_serial", "tc_logger",
    "thermotron",
    "serial_link", "visa_link",  # the pyserial and pyvisa links of the drivers above
    "software_loop",  # software step execution for the SMUs, which have no onboard steps
    "step_response",  # rise time, overshoot, settling of a real source (qualification)
})
SIMULATED_DRIVERS = frozenset({
    "sim_drivers",  # sim-cycler and sim-chamber: the default bench (instruments/sim.yaml)
    "sim_pybamm",  # sim-pybamm, the optional PyBaMM cell
    "sim_smu",  # a simulated SMU behind the real SMU channel: it imports keithley_smu
})
# The default bench (validate and run simulate on it) needs sim_drivers alone.
NOT_FOR_THE_SIM_BENCH = frozenset(f"labctl.drivers.{m}" for m in
                                  REAL_HARDWARE_DRIVERS | (SIMULATED_DRIVERS - {"sim_drivers"}))

# None of --help, ls, show, status builds a station or runs a procedure: no driver, no
# simulator, no engine, and no plugin registry (building it imports every built-in plugin,
# labctl.drivers.sim_drivers first; only run, validate, plan, export, plugins, analyze do).
NOT_FOR_LIGHT_COMMANDS = ("labctl.drivers", "labctl.sim", "labctl.engine", "labctl.plugins",
                          "labctl.builtins")

# The console script as pip writes it (`from labctl.cli import console`), plus an exit hook
# that records sys.modules: console() ends the process through the exit handlers
# (process_exit.leave_now), not by returning. Registered first, the hook runs last; it
# writes only in this process, not in a forked child that inherited it.
_PROBE = """
import atexit, json, os, sys
out, pid = sys.argv.pop(1), os.getpid()
def dump():
    if os.getpid() == pid:
        with open(out, "w") as f:
            json.dump(sorted(sys.modules), f)
atexit.register(dump)
sys.argv[0] = "labctl"
from labctl.cli import console
sys.exit(console())
"""


@dataclass(frozen=True)
class Ran:
    """A `labctl` process that ended: every module it had loaded (dotted names too)."""

    modules: frozenset[str]
    stdout: str
    stderr: str

    @property
    def top(self) -> frozenset[str]:
        return frozenset(m.partition(".")[0] for m in self.modules)

    def under(self, packages: Iterable[str]) -> list[str]:
        """The loaded modules that are one of `packages` or inside one of them."""
        return sorted(m for m in self.modules
                      if any(m == p or m.startswith(p + ".") for p in packages))


def _labctl(*args: str, cwd: Path = REPO) -> Ran:
    """`labctl ARGS` through its entry point in a fresh interpreter; it must succeed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modules.json"
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], cwd=cwd,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (args, proc.returncode, proc.stderr[-2000:])
        assert out.is_file(), (args, "the exit hook did not run", proc.stderr[-2000:])
        modules = frozenset(json.loads(out.read_text()))
    return Ran(modules, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class FinishedRun:
    results: Path
    run_dir: Path
    ran: Ran  # the `labctl run` that made it


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """One quickstart run on the simulated bench, shared by the tests that read it."""
    results = tmp_path_factory.mktemp("results")
    ran = _labctl("run", "procedures/quickstart.yaml", "--results", str(results),
                  "--no-progress")
    (run_dir,) = (p for p in results.iterdir() if p.is_dir())
    return FinishedRun(results, run_dir, ran)


def test_import_labctl_is_light():
    proc = subprocess.run([sys.executable, "-c", "import json, sys, labctl; "
                           "print(json.dumps(sorted(sys.modules)))"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    loaded = json.loads(proc.stdout)
    assert "labctl" in loaded
    assert not {m.split(".")[0] for m in loaded} & HEAVY
    assert not [m for m in loaded if m.startswith("labctl.")]


# name -> (arguments, what its stdout shows when it did its work, more it must not load);
# {results}, {run} and {run_name} are the finished run's.
_LIGHT: dict[str, tuple[list[str], str, frozenset[str]]] = {
    "--help": (["--help"], "Usage: labctl [OPTIONS] COMMAND [ARGS]...",
               # the commands are listed from COMMANDS, not imported
               frozenset(target.partition(":")[0] for target, _ in COMMANDS.values())),
    "ls": (["ls", "--results", "{results}"], "{run_name}\n", frozenset()),
    "show": (["show", "{run}"], "run directory: {run}\n  status: completed",
             frozenset({"pyarrow", "numpy"})),  # the run's digest has its summary and steps
    "show --json": (["show", "{run}", "--json"], '"status": "completed"',
                    frozenset({"pyarrow", "numpy"})),
    # it reads run.json and each active run's status file, nothing of the engine
    "status": (["status", "--results", "{results}"], "no active runs in {results}\n",
               frozenset({"numpy"})),
}


@pytest.mark.parametrize("name", list(_LIGHT))
def test_light_commands_load_no_heavy_library_driver_or_simulator(name, finished_run):
    args, shows, also_not = _LIGHT[name]
    fill = {"results": finished_run.results, "run": finished_run.run_dir,
            "run_name": finished_run.run_dir.name}
    ran = _labctl(*(a.format(**fill) for a in args))
    assert shows.format(**fill) in ran.stdout, ran.stdout[-2000:]  # the command did its work
    assert not ran.top & HEAVY, sorted(ran.top & HEAVY)
    assert not ran.under(NOT_FOR_LIGHT_COMMANDS), ran.under(NOT_FOR_LIGHT_COMMANDS)
    assert not ran.under(also_not), ran.under(also_not)


def test_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


def test_validate_simulates_without_heavy_libraries_or_real_drivers():
    ran = _labctl("validate", "procedures/quickstart.yaml")
    assert ran.stdout.startswith("ok: procedures/quickstart.yaml is valid"), ran.stdout
    assert not ran.top & HEAVY, sorted(ran.top & HEAVY)
    # It built the default bench's simulated twin: the probe sees the driver imports.
    assert {"labctl.drivers.sim_drivers", "labctl.sim.cycler"} <= ran.modules
    assert not ran.modules & NOT_FOR_THE_SIM_BENCH, sorted(ran.modules & NOT_FOR_THE_SIM_BENCH)


def test_every_driver_module_is_classified():
    modules = {p.stem for p in (REPO / "labctl" / "drivers").glob("*.py")} - {"__init__"}
    assert not REAL_HARDWARE_DRIVERS & SIMULATED_DRIVERS
    classified = REAL_HARDWARE_DRIVERS | SIMULATED_DRIVERS
    assert modules == classified, {"not classified": sorted(modules - classified),
                                   "gone": sorted(classified - modules)}


def test_a_simulated_run_does_not_import_pandas_scipy_or_matplotlib(finished_run):
    loaded = finished_run.ran.top
    assert (finished_run.run_dir / "timeseries.parquet").is_file()  # the run wrote its tables
    # On Linux a child process writes the Parquet files (store/table_writer.py).
    assert ("pyarrow" in loaded) != sys.platform.startswith("linux")
    assert not loaded & {"pandas", "scipy", "matplotlib"}
    assert not finished_run.ran.modules & NOT_FOR_THE_SIM_BENCH


# Loaded only for the inputs that need them: a .py procedure, a typo to suggest a word
# for, a spectrum to simulate, a cell table in a CSV file.
_NOT_FOR_A_CYCLING_YAML_RUN = ("labctl.procedures.python_proc", "labctl.suggest",
                               "labctl.sim.impedance", "labctl.cells.impedance_spec", "csv")


def test_a_cycling_yaml_run_skips_the_modules_other_inputs_need(finished_run):
    loaded = finished_run.ran.modules
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
