"""Benchmark: `labctl analyze cycling --all` over a store of simulated runs, serial vs Dask.

Builds a results store of quick simulated cycling runs (default 1,000; 2 cycles
each, 2 min rests, mostly the LFP preset with every 50th run an NMC cell so the
fleet table has outliers), then times the cycling analysis of every run:

- serial: one run after another in one process (`--workers 0`);
- a LocalCluster of 1 and of 2 worker processes (`--workers 1`, `--workers 2`).

Each mode runs in a fresh Python process. Prints start-up time (cluster and
imports), analysis time, runs per second, the speed-up over serial, the CPU
seconds per run of all processes (client, scheduler and workers), the speed-up
those CPU times predict on an idle machine (serial CPU per run over the busiest
worker's, or over all processes' CPU shared by the cores, whichever is slower),
and the peak resident memory of every worker process (its own ru_maxrss); the
2-worker cluster is also timed on a tenth of the runs, to show that a worker's
memory does not grow with the number of runs. Never fails on timing.

    python bench/fleet.py [--runs 1000] [--keep DIR] [--store DIR] [--no-plots]

The machine's load matters: run it on an otherwise idle machine for the figures
in docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
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
REPO = HERE.parent


def _build_share(args: tuple[str, list[int]]) -> int:
    results, indices = args
    sys.path.insert(0, str(REPO))
    from labctl.engine.session import prepare, start_run

    preps = {}
    for k in indices:
        cell = "nmc-1p95ah" if k % 50 == 49 else "lfp-2p2ah"
        if cell not in preps:
            preps[cell] = prepare(REPO / "procedures" / "cycling.yaml", cell_ref=cell,
                                  params={"n_cycles": "2", "rest_min": "2"})
        start_run(preps[cell], results_root=results)
    return len(indices)


def build_store(results: Path, n: int, processes: int) -> float:
    t0 = time.perf_counter()
    shares = [(str(results), list(range(k, n, processes))) for k in range(processes)]
    with mp.get_context("fork").Pool(processes) as pool:
        done = sum(pool.map(_build_share, shares))
    assert done == n
    return time.perf_counter() - t0


def _worker_peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_s() -> float:
    """CPU seconds this process has used (user + system): unlike wall time, it does not
    depend on how busy the rest of the machine is."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _tree_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of this process and every process below it (the
    LocalCluster's nannies and workers), by pid, read by psutil from outside them."""
    import psutil

    me = psutil.Process()
    out = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:  # a process that just ended
            continue
    return out


def _warm(run_path: str, plots: bool) -> None:
    """Import the analysis and analyse one run, before the clock starts: a process' first
    analysis costs ~0.4 s more CPU (lazy imports, fonts, caches). Every process pays it
    once, serial or worker, so it is start-up, not per-run cost."""
    from labctl.fleet.tasks import analyze_one

    analyze_one("cycling", run_path, {"no_plots": not plots})


def measure(results: str, workers: int, where: str | None, plots: bool) -> dict:
    """One mode, in this (fresh) process: start-up, analysis time, peak memory."""
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    from labctl.fleet.analyze import analyze_all
    from labctl.fleet.store import Store
    from labctl.fleet.tasks import analysis_command

    analysis_command("cycling")
    first = str(Store(results).runs["path"].iloc[0])
    options = {"no_plots": not plots}
    if workers == 0:
        _warm(first, plots)
        t1, c1 = time.perf_counter(), _cpu_s()
        outcome = analyze_all("cycling", results=results, options=options, where=where,
                              workers=0)
        t2 = time.perf_counter()
        cpu, worker_cpu = _cpu_s() - c1, [_cpu_s() - c1]
        peaks = [_worker_peak_kib()]
    else:
        from labctl.fleet.cluster import fleet_client

        with fleet_client(workers=workers) as client:
            client.run(_warm, first, plots)  # every worker, before the clock starts
            before = client.run(_cpu_s)
            tree0 = _tree_cpu_s()
            t1, c1 = time.perf_counter(), _cpu_s()
            outcome = analyze_all("cycling", results=results, options=options, where=where,
                                  client=client)
            t2 = time.perf_counter()
            client_cpu = _cpu_s() - c1  # the client and the LocalCluster's scheduler
            tree1 = _tree_cpu_s()
            after = client.run(_cpu_s)
            worker_pids = set(client.run(os.getpid).values())
            worker_cpu = [after[a] - before[a] for a in sorted(after) if a in before]
            peaks = sorted(client.run(_worker_peak_kib).values())
        spent = {pid: tree1[pid] - tree0[pid] for pid in tree1 if pid in tree0}
        me = os.getpid()
        # Every process of the cluster, as psutil sees it from outside: this client (with
        # the LocalCluster's scheduler in it), the nannies and the workers.
        cpu = sum(spent.values())
        client_cpu = spent.get(me, client_cpu)
        parts = {"client_scheduler": client_cpu,
                 "workers": sum(v for p, v in spent.items() if p in worker_pids),
                 "nannies": sum(v for p, v in spent.items() if p != me and p not in worker_pids)}
        return {"workers": workers, "runs": len(outcome.results),
                "failed": len(outcome.failed), "startup_s": t1 - t0, "analysis_s": t2 - t1,
                "peak_mib": [p / 1024 for p in peaks], "cpu_s": cpu, "cpu_parts_s": parts,
                "worker_cpu_s": worker_cpu, "outliers": len(outcome.outliers)}
    return {"workers": workers, "runs": len(outcome.results), "failed": len(outcome.failed),
            "startup_s": t1 - t0, "analysis_s": t2 - t1, "peak_mib": [p / 1024 for p in peaks],
            "cpu_s": cpu, "cpu_parts_s": {"client_scheduler": cpu, "workers": 0.0,
                                          "nannies": 0.0},
            "worker_cpu_s": worker_cpu, "outliers": len(outcome.outliers)}


def _run_mode(results: Path, workers: int, where: str | None, plots: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", str(results),
           "--workers", str(workers), "--plots" if plots else "--no-plots"]
    if where:
        cmd += ["--where", where]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"mode {workers} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(rows: list[dict]) -> None:
    """The table: wall figures (noisy on a shared machine) and CPU figures (not)."""
    serials = [r for r in rows if r["workers"] == 0]
    serial_wall = statistics.median(r["analysis_s"] / r["runs"] for r in serials)
    serial_cpu = statistics.median(r["cpu_s"] / r["runs"] for r in serials)
    cores = max(1, os.cpu_count() or 1)
    print(f"{'mode':<22} {'runs':>5} {'start-up s':>10} {'analysis s':>10} {'runs/s':>7} "
          f"{'speed-up':>8} {'CPU s/run':>9} {'client':>7} {'workers':>7} {'nannies':>7} "
          f"{'CPU bound':>9} {'idle est.':>9}  peak MiB per process")
    for r in rows:
        n = r["runs"]
        mode = "serial (1 process)" if r["workers"] == 0 else f"LocalCluster {r['workers']} w"
        if r.get("tenth"):
            mode += " (1/10)"
        speed = serial_wall / (r["analysis_s"] / n)
        cpu = r["cpu_s"] / n
        parts = r["cpu_parts_s"]
        # CPU-bound speed-up: serial CPU over the cluster's CPU shared by its cores (as
        # many as there are workers, at most the machine's). What the wall speed-up reaches
        # on an idle machine if nothing waits; the idle estimate also lets the busiest
        # worker set the pace.
        used = max(1, min(cores, r["workers"]))
        bound = serial_cpu / (cpu / used)
        busiest = max(r["worker_cpu_s"]) / n
        idle = serial_cpu / max(busiest, cpu / cores) if r["workers"] else 1.0
        print(f"{mode:<22} {n:>5} {r['startup_s']:>10.2f} {r['analysis_s']:>10.2f} "
              f"{n / r['analysis_s']:>7.2f} {speed:>8.2f} {cpu:>9.4f} "
              f"{parts['client_scheduler'] / n:>7.4f} {parts['workers'] / n:>7.4f} "
              f"{parts['nannies'] / n:>7.4f} {bound:>9.2f} {idle:>9.2f}  "
              f"{', '.join(f'{p:.0f}' for p in r['peak_mib'])}"
              + (f"  ({r['failed']} failed)" if r["failed"] else ""))
    print("(speed-up and CPU bound against the serial median"
          + (f" of {len(serials)} timings" if len(serials) > 1 else "") + ")")
    for w in sorted({r["workers"] for r in rows if r["workers"] and not r.get("tenth")}):
        mine = [r for r in rows if r["workers"] == w and not r.get("tenth")]
        cpu = statistics.median(r["cpu_s"] / r["runs"] for r in mine)
        wall = statistics.median(r["analysis_s"] / r["runs"] for r in mine)
        used = max(1, min(os.cpu_count() or 1, w))
        print(f"{w} worker(s), median of {len(mine)}: CPU s/run {cpu:.4f} (serial "
              f"{serial_cpu:.4f}, {cpu / serial_cpu - 1:+.1%}), CPU-bound speed-up "
              f"{serial_cpu / (cpu / used):.2f}, wall speed-up {serial_wall / wall:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", help="Build the store in this folder and keep it.")
    parser.add_argument("--store", help="Use this existing store instead of building one.")
    parser.add_argument("--plots", dest="plots", action="store_true", default=True)
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="Skip the per-run PNG figures (the analysis' own option).")
    parser.add_argument("--modes", default="0,1,2",
                        help="Worker counts to time, serial (0) first (default 0,1,2).")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Time every mode this many times, alternating (medians too).")
    parser.add_argument("--no-tenth", dest="tenth", action="store_false",
                        help="Skip the 2-worker run on a tenth of the runs (memory check).")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.where, args.plots)))
        return

    tmp = None
    if args.store:
        results = Path(args.store)
        print(f"store: {results} (existing)")
    else:
        base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="labctl-fleet-"))
        tmp = None if args.keep else base
        results = base / "results"
        build_s = build_store(results, args.runs, max(1, os.cpu_count() or 1))
        print(f"store: {args.runs} simulated cycling runs built in {build_s:.1f} s ({results})")
    print(f"cores: {os.cpu_count()}, load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}, plots: {args.plots}")
    try:
        modes = [int(m) for m in args.modes.split(",")]
        if modes[0] != 0:
            raise SystemExit("--modes must start with 0 (serial, the reference)")
        # Modes alternate, `--repeat` times: the machine's load drifts, so each mode
        # meets the same mix of quiet and busy moments.
        rows = [_run_mode(results, w, None, args.plots)
                for _ in range(args.repeat) for w in modes]
        if args.tenth and 2 in modes:
            from labctl.fleet.store import Store

            runs = Store(str(results)).runs
            tenth = runs["started_unix_s"].sort_values().iloc[max(0, len(runs) // 10 - 1)]
            small = _run_mode(results, 2, f"started_unix_s <= {float(tenth)!r}", args.plots)
            small["tenth"] = True
            rows.append(small)
        _report(rows)
        print(f"outliers flagged: {rows[0]['outliers']} (every 50th run is an NMC cell)")
        print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
