"""Benchmark: many simulated channels cycling in parallel, every sample durable.

Default: 64 channels, each cycling (CC-CV charge / rest / CC discharge / rest
at 1C on the NMC preset) for 100 virtual hours, logged every 1 s (~23 million
samples in all), through `labctl run --channel ...`'s machinery: one thread,
station, journal and run directory per channel, Parquet tables at the end.
Prints wall time, total samples, samples per second and the peak memory.
Never fails on timing.

    python bench/channels.py [--channels 64] [--hours 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROCEDURE = """\
name: bench-channels
log: every 1 s
max_duration: {hours} hours
steps:
  - repeat: 100000
    steps:
      - Charge at 1C until 4.1 V
      - Hold at 4.1 V until C/20
      - Rest for 10 minutes
      - Discharge at 1C until 3.2 V
      - Rest for 10 minutes
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--hours", type=float, default=100.0)
    parser.add_argument("--keep", help="Keep the results in this folder (default: a temp folder).")
    parser.add_argument("--processes", type=int, default=None,
                        help="Worker processes (default: labctl's, at most 4 channels per "
                             "process and at least one per core); 1 = threads only.")
    args = parser.parse_args()

    import labctl.sim.cycler  # noqa: F401  (import before timing)
    import labctl.store.tables  # noqa: F401
    from labctl.engine.control import RunControl
    from labctl.engine.multi import ChannelJob, prepare_all, run_channels

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="labctl-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    proc = root / "bench-channels.yaml"
    proc.write_text(PROCEDURE.format(hours=args.hours))
    jobs = [ChannelJob(channel=str(k + 1), procedure=str(proc), cell="nmc-1p95ah",
                       station=str(HERE.parent / "instruments" / "sim.yaml"))
            for k in range(args.channels)]
    prepared = prepare_all(jobs)
    if args.processes is None:
        from labctl.engine.multi import default_processes

        args.processes = default_processes(len(prepared))
    controls = [RunControl() for _ in prepared]
    t0 = time.perf_counter()
    outcomes = run_channels(prepared, results_root=root / "results", controls=controls,
                            processes=args.processes)
    wall = time.perf_counter() - t0
    samples = sum(o.summary.get("n_samples", 0) for o in outcomes if not isinstance(o, Exception))
    failed = [o for o in outcomes if isinstance(o, Exception)]
    statuses = {}
    for o in outcomes:
        key = "error" if isinstance(o, Exception) else o.status
        statuses[key] = statuses.get(key, 0) + 1
    # Peak resident memory of the largest process (the parent or one worker).
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"channels      : {args.channels} x {args.hours:g} virtual hours, logged every 1 s, "
          f"{args.processes} worker process(es)")
    print(f"wall time     : {wall:.1f} s")
    print(f"samples       : {samples:,} (journal fsynced >= 1/s, Parquet tables built)")
    print(f"samples/s     : {samples / wall:,.0f}")
    print(f"peak memory   : {peak_mb:,.0f} MB")
    print(f"run statuses  : {statuses}" + (f"; first error: {failed[0]}" if failed else ""))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
