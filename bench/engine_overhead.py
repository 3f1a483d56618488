"""The engine's and the store's share of a simulated run, without the simulator (not a test).

Runs bench/sim_cycling.py's procedure (100 cycles x 5 steps, 1 s logging, ~850,000
samples, journal + Parquet written) once with the simulator, recording every batch
it yields; then replays those batches through `start_run` with the simulator's
`run_step` swapped for the recording. What is left is what labctl does per sample
and per step (accounting, safety checks, step summaries, journal, live tables) and
per run (run folder, finalize), with far less noise than the whole run: the
simulator's share moves with its own changes and with the machine's load.

Prints medians of the main thread's CPU time (time.thread_time) and wall time.
Replayed batches are read from memory instead of being freshly computed, so the
per-sample figures are a little pessimistic (colder caches) compared with a real run.

    python bench/engine_overhead.py [--cycles 100] [--repeat 11]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's labctl, whatever `pip install -e` says
sys.path.insert(0, str(HERE))

from sim_cycling import PROCEDURE, preload_modules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()

    preload_modules()
    from labctl.engine.session import prepare, start_run
    from labctl.sim.cycler import SimCyclerChannel

    simulate = SimCyclerChannel.run_step
    tape: list[list] = []  # per run_step call: its batches, then its return value
    replayed = 0

    def recording(self, step, limits, logging):
        out: list = []
        tape.append(out)
        gen = simulate(self, step, limits, logging)
        try:
            while True:
                batch = next(gen)
                out.append(batch)
                yield batch
        except StopIteration as stop:
            out.append(stop.value)
            return stop.value

    def replaying(self, step, limits, logging):
        nonlocal replayed
        recorded = tape[replayed % len(tape)]
        replayed += 1
        yield from recorded[:-1]
        return recorded[-1]

    with tempfile.TemporaryDirectory() as tmp:
        proc = Path(tmp) / "bench-cycling.yaml"
        proc.write_text(PROCEDURE.format(n=args.cycles))
        station = HERE.parent / "instruments" / "sim.yaml"

        def run(k: int) -> tuple[float, float, int]:
            prep = prepare(proc, station_path=station, cell_ref="nmc-1p95ah")
            t0, c0 = time.perf_counter(), time.thread_time()
            outcome = start_run(prep, results_root=Path(tmp) / f"results{k}")
            main_cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
            shutil.rmtree(Path(tmp) / f"results{k}", ignore_errors=True)
            return main_cpu, wall, outcome.summary.get("n_samples") or 0

        try:
            SimCyclerChannel.run_step = recording
            _, sim_wall, n = run(0)
            SimCyclerChannel.run_step = replaying
            run(1)  # warm: buffers, caches
            runs = []
            for k in range(args.repeat):
                replayed = 0
                runs.append(run(2 + k))
        finally:
            SimCyclerChannel.run_step = simulate
    cpu = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    steps = len(tape)
    print(f"engine + store without the simulator: {cpu * 1e3:.1f} ms main-thread CPU, "
          f"{wall * 1e3:.1f} ms wall (medians of {args.repeat}; min CPU "
          f"{min(r[0] for r in runs) * 1e3:.1f} ms) for {n:,} samples in {steps} steps "
          f"({cpu / n * 1e9:.0f} ns per sample all in); the recording run with the "
          f"simulator took {sim_wall * 1e3:.0f} ms wall")


if __name__ == "__main__":
    main()
