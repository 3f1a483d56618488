"""Benchmark: 100 cycles on the simulated bench, storage included, against PyBaMM.

Each cycle: Discharge at 1C until 3.2 V; Rest 10 min; Charge at 1C until 4.1 V;
Hold at 4.1 V until C/20; Rest 10 min — logged every 1 s (~860,000 samples),
on the NMC 1.95 Ah preset, through `labctl` with the journal and the Parquet
tables written. PyBaMM runs the same experiment in its Thevenin ECM (default
parameters) in a subprocess; pass `--pybamm-python` to use PyBaMM from another
virtualenv. Prints the figures; never fails on timing.

    python bench/sim_cycling.py [--cycles 100] [--pybamm-python /path/to/python]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Measure the labctl of this checkout, whatever `pip install -e` points at.
sys.path.insert(0, str(HERE.parent))

PROCEDURE = """\
name: bench-cycling
description: 100 cycles for the simulation benchmark
parameters:
  n_cycles: {{default: {n}, min: 1, max: 100000, type: int}}
log: every 1 s
steps:
  - repeat: "{{n_cycles}}"
    steps:
      - Discharge at 1C until 3.2 V
      - Rest for 10 minutes
      - Charge at 1C until 4.1 V
      - Hold at 4.1 V until C/20
      - Rest for 10 minutes
"""


def preload_modules() -> None:
    """Import what a simulated run loads on first use (plugins, drivers, simulator), so
    the timed figure is the run, not Python compiling modules."""
    import importlib
    import pkgutil

    import labctl.builtins

    for mod in pkgutil.iter_modules(labctl.builtins.__path__):
        importlib.import_module(f"labctl.builtins.{mod.name}")
    for name in ("labctl.builtins.core", "labctl.drivers.sim_drivers", "labctl.engine.sharing",
                 "labctl.sim.cycler", "labctl.store.record_tables", "labctl.store.tables"):
        importlib.import_module(name)


def run_labctl(n_cycles: int) -> dict:
    # Import first (as PyBaMM's figure excludes its import): only the run is timed.
    preload_modules()
    from labctl.engine.session import prepare, start_run

    with tempfile.TemporaryDirectory() as tmp:
        proc = Path(tmp) / "bench-cycling.yaml"
        proc.write_text(PROCEDURE.format(n=n_cycles))
        station = HERE.parent / "instruments" / "sim.yaml"
        t0 = time.perf_counter()
        prep = prepare(proc, station_path=station, cell_ref="nmc-1p95ah")
        outcome = start_run(prep, results_root=Path(tmp) / "results")
        wall = time.perf_counter() - t0
        return {"tool": "labctl", "wall_s": wall, "samples": outcome.summary.get("n_samples"),
                "status": outcome.status, "cycles": n_cycles}


def run_labctl_cli(n_cycles: int) -> dict:
    """The same experiment as a technician starts it: `labctl run` as a whole process,
    minus the start-up of `labctl --version` (as PyBaMM's figure excludes its import)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed labctl has its bytecode cached
    cli = [sys.executable, "-m", "labctl.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        proc = Path(tmp) / "bench-cycling.yaml"
        proc.write_text(PROCEDURE.format(n=n_cycles))
        station = HERE.parent / "instruments" / "sim.yaml"
        subprocess.run([*cli, "--version"], env=env, capture_output=True, check=True)  # warm
        starts = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([*cli, "--version"], env=env, capture_output=True, check=True)
            starts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = subprocess.run([*cli, "run", str(proc), "--station", str(station), "--cell",
                              "nmc-1p95ah", "--results", str(Path(tmp) / "results"), "--json"],
                             env=env, capture_output=True, text=True, cwd=HERE.parent)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"labctl run failed: {out.stderr[-2000:]}")
        summary = json.loads(out.stdout)["summary"]
        start = sorted(starts)[1]
        return {"wall_s": wall, "startup_s": start, "net_s": wall - start,
                "samples": summary.get("n_samples")}


def run_pybamm(n_cycles: int, python: str | None) -> dict | None:
    if python is None:
        if importlib.util.find_spec("pybamm") is None:
            return None
        python = sys.executable
    out = subprocess.run([python, str(HERE / "pybamm_peer.py"), str(n_cycles)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        print(f"PyBaMM run failed:\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--pybamm-python", help="A Python interpreter that has pybamm installed.")
    args = parser.parse_args()

    ours = run_labctl(args.cycles)
    rate = ours["samples"] / ours["wall_s"]
    print(f"labctl : {ours['wall_s']:.3f} s wall, {ours['samples']:,} samples, "
          f"{rate:,.0f} samples/s (journal + Parquet included), status {ours['status']}")
    cli = run_labctl_cli(args.cycles)
    print(f"labctl run (CLI): {cli['wall_s']:.3f} s wall, minus start-up {cli['startup_s']:.3f} s "
          f"(labctl --version) = {cli['net_s']:.3f} s, {cli['samples']:,} samples")
    peer = run_pybamm(args.cycles, args.pybamm_python)
    if peer is None:
        print("PyBaMM : not installed (pip install pybamm, or pass --pybamm-python)")
        return
    print(f"PyBaMM : {peer['wall_s']:.3f} s wall, {peer['samples']:,} samples "
          f"(pybamm {peer['version']}, Thevenin ECM, default parameters)")
    print(f"ratio  : in-process labctl is {peer['wall_s'] / ours['wall_s']:.1f}x faster (goal >= 20x); "
          f"through labctl run {peer['wall_s'] / cli['net_s']:.1f}x (goal >= 15x)")


if __name__ == "__main__":
    main()
