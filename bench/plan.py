"""Benchmark: `labctl plan` of a 1,000-cycle cycle-life procedure (goal: <= 2 s).

procedures/cycle-life.yaml on the NMC 1.95 Ah preset (it ages, so no two cycles are
alike: the planner simulates them two in a row, then takes up to 9 like the last, the cell
ageing as much each time; docs/plan.md): 10 blocks of one RPT + 99 ageing cycles and the
final RPT, 1,001 cycles, logged every 10 s, on the simulated twin of instruments/sim.yaml.
Also, for scale: the same procedure run for real (journal and tables written), and a
plan of a cell that does not age (identical cycles: counted after a few).
Prints wall and CPU seconds (best of --repeat); never fails on timing.

    python bench/plan.py [--blocks 10] [--per-rpt 99] [--repeat 3] [--no-run] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # measure this checkout's labctl


def timed(fn, repeat: int) -> tuple[float, float, object]:
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--per-rpt", type=int, default=99)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-run", action="store_true", help="skip the real run for comparison")
    ap.add_argument("--profile", action="store_true", help="cProfile one plan, print the top 30")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    from sim_cycling import preload_modules

    preload_modules()
    import labctl.plan.walk  # noqa: F401  (imports are not the figure)
    from labctl.engine.session import prepare, start_run
    from labctl.plan import plan_prepared

    params = {"cycles_per_rpt": str(args.per_rpt), "max_blocks": str(args.blocks)}
    station = HERE.parent / "instruments" / "sim.yaml"
    proc = HERE.parent / "procedures" / "cycle-life.yaml"
    prep = prepare(proc, station_path=station, cell_ref="nmc-1p95ah", params=params)
    wall, cpu, report = timed(lambda: plan_prepared(prep), args.repeat)
    n_cycles = sum(c["repeats"] for c in report.cycles)
    print(f"plan of cycle-life, {n_cycles:,} cycles ({report.n_steps:,.0f} steps, "
          f"{report.n_samples:,.0f} samples predicted, {report.duration_s / 86400:.1f} days): "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU (best of {args.repeat}; goal <= 2 s)")
    from labctl.plan import enforce_ceilings

    wall, cpu, _ = timed(lambda: enforce_ceilings(prep, need_report=False), args.repeat)
    print(f"the ceilings check `labctl run` makes first (rough plan): {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU")
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        plan_prepared(prep)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)

    if not args.no_run:
        with tempfile.TemporaryDirectory() as tmp:
            w, c = time.perf_counter(), time.process_time()
            outcome = start_run(prep, results_root=Path(tmp) / "results")
            w, c = time.perf_counter() - w, time.process_time() - c
        print(f"the same procedure run (journal + tables): {w:.2f} s wall, {c:.2f} s CPU; "
              f"plan/run duration {report.duration_s / outcome.summary['duration_s']:.4f}")

    # A cell without ageing: its cycles repeat exactly, the plan counts them.
    import yaml

    cell = yaml.safe_load((HERE.parent / "fixtures" / "cells" / "nmc-1p95ah.yaml").read_text())
    cell["model"].pop("ageing", None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "steady.yaml"
        path.write_text(yaml.safe_dump(cell))
        steady = prepare(proc, station_path=station, cell_ref=str(path), params=params)
        wall, cpu, report = timed(lambda: plan_prepared(steady), args.repeat)
    print(f"plan of the same on a cell that does not age ({len(report.cycles):,} cycle rows, "
          f"iterations counted): {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
