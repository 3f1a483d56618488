"""Benchmark: 100 cycles on the simulated bench, storage included, against PyBaMM.

Each cycle: Discharge at 1C until 3.2 V; Rest 10 min; Charge at 1C until 4.1 V;
Hold at 4.1 V until C/20; Rest 10 min — logged every 1 s (~860,000 samples),
on the NMC 1.95 Ah preset, through `labctl` with the journal and the Parquet
tables written. PyBaMM runs the same experiment in its Thevenin ECM (default
parameters) in a subprocess; pass `--pybamm-python` to use PyBaMM from another
virtualenv. Prints the figures; never fails on timing.

    python bench/sim_cycling.py [--cycles 100] [--repeat 3] [--rounds 1] [--peer-runs 3]
        [--pybamm-python /path/to/python]

labctl's figures are medians of `--repeat` runs; besides wall time it prints CPU time
(the in-process part's `time.process_time`, the command's user + system time), which a
busy machine disturbs far less than wall time. In each round the in-process runs and the
`labctl run` processes take turns, and the PyBaMM runs (`--peer-runs`, median) come spread
evenly among them: this machine's speed changes by up to a third from one spell of seconds
to the next, and a ratio should compare figures taken in the same spells. The
simulator-alone figure (the split only, no goal) is measured after them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import statistics
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


class InProcessRuns:
    """labctl in this process, one timed run at a time (`run_once`), after one untimed run
    that warms the caches a long-lived process would have warm and starts the table
    writer process it would have running (store/shared_writer.py)."""

    def __init__(self, n_cycles: int):
        # Import first (as PyBaMM's figure excludes its import): only the run is timed.
        preload_modules()
        from labctl.engine.session import prepare, start_run
        from labctl.store.shared_writer import running_writer

        self._prepare, self._start_run = prepare, start_run
        self._running_writer = running_writer
        self._tmp = tempfile.TemporaryDirectory()
        self._proc = Path(self._tmp.name) / "bench-cycling.yaml"
        self._proc.write_text(PROCEDURE.format(n=n_cycles))
        self.n_cycles = n_cycles
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.mains: list[float] = []
        self.writers: set = set()  # the writer process running at each timed run's start and end
        self.outcome = None
        self._one(timed=False)

    def run_once(self) -> None:
        self._one(timed=True)

    def _one(self, timed: bool) -> None:
        results = Path(self._tmp.name) / "results"
        if timed:
            self.writers.add(self._running_writer())
        t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
        prep = self._prepare(self._proc, station_path=HERE.parent / "instruments" / "sim.yaml",
                             cell_ref="nmc-1p95ah")
        self.outcome = self._start_run(prep, results_root=results)
        if timed:
            self.walls.append(time.perf_counter() - t0)
            self.cpus.append(time.process_time() - c0)
            self.mains.append(time.thread_time() - m0)
            self.writers.add(self._running_writer())
        shutil.rmtree(results, ignore_errors=True)

    def result(self) -> dict:
        """Medians of the timed runs: wall, CPU (process_time: every thread of the process)
        and the engine's thread alone."""
        # One writer all along: every timed run had it (one run at a time, none busy).
        one = len(self.writers) == 1 and None not in self.writers
        return {"tool": "labctl", "wall_s": statistics.median(self.walls),
                "tables": "the table writer process" if one else "a thread (some runs)",
                "cpu_s": statistics.median(self.cpus), "main_cpu_s": statistics.median(self.mains),
                "walls": self.walls, "samples": self.outcome.summary.get("n_samples"),
                "status": self.outcome.status, "cycles": self.n_cycles}

    def close(self) -> None:
        self._tmp.cleanup()


def run_simulator_only(n_cycles: int, repeat: int = 3) -> dict:
    """The same steps straight through the simulated cycler channel: no engine (no step
    checks, no per-sample limit checks, no accounting), no journal, no tables. Not a goal
    of its own: it says how the in-process figure splits between the simulator and the
    rest."""
    from labctl.capabilities import LoggingPolicy
    from labctl.engine.session import prepare
    from labctl.procedures.grammar import parse_step
    from labctl.stations.build import make_clock, open_station

    texts = [line.strip()[2:] for line in PROCEDURE.splitlines()[-5:]]
    with tempfile.TemporaryDirectory() as tmp:
        proc = Path(tmp) / "bench-cycling.yaml"
        proc.write_text(PROCEDURE.format(n=n_cycles))
        prep = prepare(proc, station_path=HERE.parent / "instruments" / "sim.yaml",
                       cell_ref="nmc-1p95ah")
    steps = [parse_step(t, cell=prep.cell, default_logging=LoggingPolicy(period_s=1.0))
             for t in texts]
    walls, samples = [], 0
    for k in range(repeat + 1):
        station = open_station(prep.station, prep.cell, registry=prep.registry,
                               clock=make_clock(prep.station))
        cycler, samples = station.get("cycler"), 0
        t0 = time.perf_counter()
        for _ in range(n_cycles):
            for step in steps:
                batches = cycler.run_step(step, prep.procedure.safety, step.logging)
                for batch in batches:
                    samples += len(batch.step_time_s)
        if k:
            walls.append(time.perf_counter() - t0)
        station.close()
    return {"wall_s": statistics.median(walls), "samples": samples}


def _child(cmd: list[str], **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall time and CPU time (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


class CliRuns:
    """The same experiment as a technician starts it: `labctl run` as a whole process,
    minus the start-up of `labctl --version` (as PyBaMM's figure excludes its import).
    `run_once` times one of each."""

    def __init__(self, n_cycles: int):
        self.env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed labctl has its bytecode cached
        self.cli = [sys.executable, "-m", "labctl.cli"]
        self._tmp = tempfile.TemporaryDirectory()
        self._proc = Path(self._tmp.name) / "bench-cycling.yaml"
        self._proc.write_text(PROCEDURE.format(n=n_cycles))
        self.starts: list[tuple[float, float]] = []
        self.runs: list[tuple[float, float]] = []
        self.summary: dict = {}
        subprocess.run([*self.cli, "--version"], env=self.env, capture_output=True, check=True)

    def run_once(self) -> None:
        self.starts.append(_child([*self.cli, "--version"], env=self.env, check=True)[:2])
        results = Path(self._tmp.name) / "results"
        station = HERE.parent / "instruments" / "sim.yaml"
        wall, cpu, out = _child([*self.cli, "run", str(self._proc), "--station", str(station),
                                 "--cell", "nmc-1p95ah", "--results", str(results), "--json"],
                                env=self.env, cwd=HERE.parent)
        if out.returncode != 0:
            raise SystemExit(f"labctl run failed: {out.stderr[-2000:]}")
        self.runs.append((wall, cpu))
        self.summary = json.loads(out.stdout)["summary"]
        shutil.rmtree(results, ignore_errors=True)

    def result(self) -> dict:
        """Medians of the runs and of the start-ups."""
        start = statistics.median(w for w, _ in self.starts)
        start_cpu = statistics.median(c for _, c in self.starts)
        wall = statistics.median(w for w, _ in self.runs)
        cpu = statistics.median(c for _, c in self.runs)
        return {"wall_s": wall, "startup_s": start, "net_s": wall - start, "cpu_s": cpu,
                "net_cpu_s": cpu - start_cpu, "samples": self.summary.get("n_samples")}

    def close(self) -> None:
        self._tmp.cleanup()


def run_pybamm(n_cycles: int, python: str | None) -> dict | None:
    if python is None:
        if importlib.util.find_spec("pybamm") is None:
            return None
        python = sys.executable
    try:
        out = subprocess.run([python, str(HERE / "pybamm_peer.py"), str(n_cycles)],
                             capture_output=True, text=True, timeout=3600)
    except OSError as exc:
        print(f"PyBaMM run failed: cannot start {python}: {exc.strerror}")
        return None
    if out.returncode != 0:
        print(f"PyBaMM run failed:\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_round(args: argparse.Namespace) -> dict | None:
    """labctl in-process and `labctl run` take turns (in-process first in every other
    pair), with the PyBaMM runs spread evenly among theirs, so that the figures a ratio
    compares come from the same minute of a shared machine whose speed changes by up to
    a third from one spell to the next; then the simulator alone (for the split only).
    Prints each figure and returns the ratios (None without PyBaMM)."""
    peers = []
    with contextlib.ExitStack() as stack:
        inproc = InProcessRuns(args.cycles)
        stack.callback(inproc.close)
        cli_runs = CliRuns(args.cycles)
        stack.callback(cli_runs.close)
        turns = []
        for k in range(args.repeat):
            pair = (inproc.run_once, cli_runs.run_once)
            turns += pair if k % 2 == 0 else pair[::-1]
        # The peer's runs spread evenly over the turns (one: halfway through them).
        n_peer = 0 if args.pybamm_python == "none" else args.peer_runs
        peer_at = [(2 * j + 1) * len(turns) // (2 * n_peer) for j in range(n_peer)]
        for k, turn in enumerate(turns):
            for _ in range(peer_at.count(k)):
                peers.append(run_pybamm(args.cycles, args.pybamm_python))
            turn()
        ours, cli = inproc.result(), cli_runs.result()
    peer = None
    if peers and None not in peers:
        peer = {**peers[0], "wall_s": statistics.median(p["wall_s"] for p in peers),
                "walls": [p["wall_s"] for p in peers]}
    rate = ours["samples"] / ours["wall_s"]
    print(f"labctl : {ours['wall_s']:.3f} s wall, {ours['cpu_s']:.3f} s CPU (process_time, all "
          f"threads; the engine's thread alone {ours['main_cpu_s']:.3f} s), "
          f"{ours['samples']:,} samples, {rate:,.0f} samples/s (journal + Parquet "
          f"included; Parquet encoded by {ours['tables']}, whose CPU time is not counted "
          f"when it is the writer process), status {ours['status']}; medians of {args.repeat} (walls "
          f"{', '.join(f'{w:.3f}' for w in ours['walls'])})")
    sim = run_simulator_only(args.cycles, args.repeat)
    print(f"simulator alone: {sim['wall_s']:.3f} s wall, {sim['samples']:,} samples (the cycler "
          f"channel without the engine's checks, journal or tables; for the split only)")
    print(f"labctl run (CLI): {cli['wall_s']:.3f} s wall, minus start-up {cli['startup_s']:.3f} s "
          f"(labctl --version) = {cli['net_s']:.3f} s; CPU {cli['cpu_s']:.3f} s, net "
          f"{cli['net_cpu_s']:.3f} s (the command's process; on Linux its Parquet writer "
          f"process is not counted); {cli['samples']:,} samples")
    if args.pybamm_python == "none":  # labctl's figures only
        return None
    if peer is None:
        found = args.pybamm_python is not None or importlib.util.find_spec("pybamm") is not None
        print("PyBaMM : a run failed (above)" if found else
              "PyBaMM : not installed (pip install pybamm, or pass --pybamm-python)")
        return None
    walls = ", ".join(f"{w:.3f}" for w in peer["walls"])
    print(f"PyBaMM : {peer['wall_s']:.3f} s wall, {peer['samples']:,} samples "
          f"(pybamm {peer['version']}, Thevenin ECM, default parameters); median of "
          f"{len(peer['walls'])} (walls {walls})")
    ratios = {"in_process": peer["wall_s"] / ours["wall_s"], "cli": peer["wall_s"] / cli["net_s"],
              "simulator": peer["wall_s"] / sim["wall_s"]}
    print(f"ratio  : in-process labctl is {ratios['in_process']:.1f}x faster (goal >= 20x); "
          f"through labctl run {ratios['cli']:.1f}x (goal >= 15x); the simulator "
          f"alone {ratios['simulator']:.1f}x")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--pybamm-python", help="A Python interpreter that has pybamm installed "
                                                "('none': skip the peer run).")
    parser.add_argument("--repeat", type=int, default=3,
                        help="labctl runs per figure (medians are printed)")
    parser.add_argument("--peer-runs", type=int, default=3,
                        help="PyBaMM runs per round, spread evenly over labctl's (their median "
                             "is the round's PyBaMM figure; one run alone swings with the "
                             "machine's slow and fast spells)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of all four figures; with more than one, the median of "
                             "the rounds' ratios is printed too (each ratio compares figures "
                             "measured minutes apart at most, so a shared machine's slow and "
                             "fast spells bias it less than one PyBaMM run against all of "
                             "labctl's)")
    args = parser.parse_args()
    if args.peer_runs < 1:
        parser.error("--peer-runs must be at least 1 (--pybamm-python none skips the peer)")
    rounds = []
    for k in range(args.rounds):
        if args.rounds > 1:
            print(f"-- round {k + 1} of {args.rounds}")
        ratios = one_round(args)
        if ratios is not None:
            rounds.append(ratios)
    if len(rounds) > 1 and len(rounds) == args.rounds:
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        each = {key: ", ".join(f"{r[key]:.1f}" for r in rounds) for key in rounds[0]}
        print(f"ratios, median of {len(rounds)} rounds: in-process {med['in_process']:.1f}x "
              f"(rounds {each['in_process']}; goal >= 20x), labctl run {med['cli']:.1f}x "
              f"(rounds {each['cli']}; goal >= 15x), the simulator alone "
              f"{med['simulator']:.1f}x")


if __name__ == "__main__":
    main()
