"""Benchmark: whole-process wall time of everyday `labctl` commands (median of N runs).

Each command runs as a fresh `python -m labctl.cli ...` process from this checkout, as a
technician would start it; the first run of each is a warm-up (page cache) and is not
counted. Goals (issue 16, 2-core machine): `ls` and `show` <= 0.2 s, `validate`
<= 0.25 s, `run procedures/quickstart.yaml` <= 0.45 s. Prints the figures; never fails.

    python bench/cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOALS = {"--help": None, "--version": None, "ls": 0.2, "show": 0.2, "validate": 0.25,
         "run": 0.45}


def _time(args: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one whole `labctl` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", *args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"labctl {' '.join(args)} failed: {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # An installed labctl has its bytecode cached; with PYTHONDONTWRITEBYTECODE every
    # start would compile ~80 modules again (~0.2 s), which is not what a user sees.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        results = str(Path(tmp) / "results")
        quick = ["run", "procedures/quickstart.yaml", "--results", results, "--no-progress"]
        _time(quick, env)  # a run for ls / show to read
        run_dir = next(p for p in Path(results).iterdir() if p.is_dir())
        commands = {
            "--help": ["--help"],
            "--version": ["--version"],
            "ls": ["ls", "--results", results],
            "show": ["show", str(run_dir)],
            "validate": ["validate", "procedures/quickstart.yaml"],
            "run": quick,
        }
        # On a busy machine wall time includes waiting for a core; CPU time does not.
        print(f"median of {opts.repeat} runs each, python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        for name, args in commands.items():
            _time(args, env)  # warm-up
            pairs = [_time(args, env) for _ in range(opts.repeat)]
            times = [w for w, _ in pairs]
            med, cpu = statistics.median(times), statistics.median(c for _, c in pairs)
            goal = GOALS[name]
            verdict = "" if goal is None else (f"  goal <= {goal:.2f} s: "
                                               f"{'met' if med <= goal else 'NOT met'}")
            print(f"labctl {name:<9} {med:6.3f} s wall (min {min(times):.3f}, max "
                  f"{max(times):.3f}), {cpu:.3f} s CPU{verdict}")


if __name__ == "__main__":
    main()
