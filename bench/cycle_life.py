"""Benchmark: a 1,000-cycle cycle-life run on the simulator, then its analyses.

procedures/cycle-life.yaml on the NMC 1.95 Ah preset (it ages: ~85 % after 1,000
cycles at 1C, 25 °C), logged every 10 s: 10 blocks of one RPT + 99 ageing cycles,
plus the final RPT (1,001 cycles). Then `cycling` (per-cycle table, RPTs, DCIR, fit,
plots) and `dqdv` (cycles 2, 100, 500, 1000). Prints wall times and samples per
second; never fails on timing. Goal: under 10 s wall for the whole thing.

    python bench/cycle_life.py [--cell nmc-1p95ah] [--blocks 10] [--per-rpt 99] [--no-plots]
        [--profile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Measure the labctl of this checkout, whatever `pip install -e` points at.
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="nmc-1p95ah")
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--per-rpt", type=int, default=99)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the run, print the top 45")
    ap.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    args = ap.parse_args()

    # Imports first: only the work is timed.
    t_imp = time.perf_counter()
    import labctl.engine.session as session
    from labctl.analysis.cycling.runs import analyze_cycling, analyze_dqdv

    sys.path.insert(0, str(HERE))
    from sim_cycling import preload_modules

    preload_modules()
    from labctl.engine.session import prepare, start_run

    t_imp = time.perf_counter() - t_imp
    # The tables are built inside start_run: time them on their own too.
    t_tables = [0.0]
    real_finalize = session.finalize

    def timed_finalize(path):
        t = time.perf_counter()
        try:
            return real_finalize(path)
        finally:
            t_tables[0] += time.perf_counter() - t

    session.finalize = timed_finalize

    params = {"cycles_per_rpt": str(args.per_rpt), "max_blocks": str(args.blocks)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        c0 = time.process_time()
        prep = prepare(HERE.parent / "procedures" / "cycle-life.yaml",
                       station_path=HERE.parent / "instruments" / "sim.yaml",
                       cell_ref=args.cell, params=params)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
        outcome = start_run(prep, results_root=Path(tmp) / "results")
        t_run = time.perf_counter() - t0
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats(args.sort).print_stats(45)
        t1 = time.perf_counter()
        _, _, cyc = analyze_cycling(outcome.path, plots_on=not args.no_plots)
        t_cyc = time.perf_counter() - t1
        last = cyc["n_cycles"]
        wanted = [c for c in (2, 100, 500, 1000) if c <= last]
        t2 = time.perf_counter()
        _, _, dq = analyze_dqdv(outcome.path, cycles=wanted, plots_on=not args.no_plots)
        t_dq = time.perf_counter() - t2
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n = outcome.summary.get("n_samples") or 0
        print(f"cell {args.cell}: {outcome.status}, {cyc['n_cycles']} cycles "
              f"({cyc['n_rpt']} RPTs), {n:,} samples")
        print(f"run (simulate + journal + tables): {t_run:6.2f} s  "
              f"({n / t_run:,.0f} samples/s, {cyc['n_cycles'] / t_run:,.0f} cycles/s)")
        print(f"  of which tables (finalize):      {t_tables[0]:6.2f} s")
        print(f"analyze cycling:                   {t_cyc:6.2f} s")
        print(f"analyze dqdv ({len(wanted)} cycles):           {t_dq:6.2f} s")
        print(f"total wall:                        {wall:6.2f} s  (goal < 10 s)  "
              f"{n / wall:,.0f} samples/s overall")
        print(f"CPU time of this process:          {cpu:6.2f} s  (wall exceeds it when other "
              "work shares the cores)")
        print(f"imports (not in the total):        {t_imp:6.2f} s")
        print(f"retention at the last ageing cycle {cyc['last_retention']:.4f}, RPT capacity "
              f"retention {cyc.get('rpt_capacity_retention', float('nan')):.4f}, DCIR "
              f"{1000 * cyc['first_dcir_ohm']:.1f} -> {1000 * cyc['last_dcir_ohm']:.1f} mOhm, "
              f"fit {cyc['fit']['model']} -> " + (
                  f"{cyc['cycles_to_threshold']:.0f} cycles to 80 %"
                  if cyc.get("cycles_to_threshold") is not None
                  else str(cyc.get("cycles_to_threshold_note"))))
        print("dQ/dV peaks (V) by cycle:",
              {p["peak"]: [round(v, 3) for v in p["voltage_v"]] for p in dq["peaks"]})


if __name__ == "__main__":
    main()
