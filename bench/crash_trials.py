"""kill -9 trials: how many crashed runs recover, and how many samples a crash loses.

Each trial starts a short paced run as a real `labctl run` process and SIGKILLs
it after a random delay: during start-up, inside a step, while the Parquet
tables are built or run.json is rewritten. Then the run directory is opened
(as far as the journal goes), `labctl resume` finishes it, and the samples that
were in the journal at the moment of the kill are compared with the finished
run: "lost" counts flushed samples missing or changed afterwards, "duplicated"
rows that appear twice. Both should be 0. tests/test_crash_trials.py runs the
same trials and asserts on them; this script only prints the figures.

    python bench/crash_trials.py [--trials 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROCEDURE = """
name: crash-trial
log: every 30 s
steps:
  - repeat: 2
    steps:
      - Charge at 1C until {cell.max_voltage_v} V
      - Rest for 5 minutes
      - Discharge at 1C until {cell.min_voltage_v} V
      - Rest for 5 minutes
"""
RUN_WALL_S = 1.2  # the paced run takes ~1.3 s of wall time (plus its finalize)


@dataclass
class Trial:
    outcome: str  # interrupted (killed inside the run), completed, or "before ..."
    flushed: int = 0  # samples in the journal when the process died
    lost: int = 0  # of those, missing or changed after resume
    duplicated: int = 0  # rows present twice in the finished run
    resumed_status: str = ""
    steps_ok: bool = True  # every step exactly once, none left interrupted


def one_trial(folder: Path, delay_s: float) -> Trial:
    """Run, kill -9 after `delay_s` (counted from the journal's creation), recover, compare."""
    import numpy as np

    import labctl
    from labctl.engine.session import resume_run
    from labctl.store.journal import read_journal

    (folder / "proc.yaml").write_text(PROCEDURE)
    results = folder / "results"
    env = dict(os.environ, LABCTL_SIM_SPEED="12000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "run", str(folder / "proc.yaml"), "--results",
         str(results), "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(results.glob("*/journal.bin")):
            break
        time.sleep(0.01)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    runs = [p for p in results.glob("*") if p.is_dir()] if results.exists() else []
    if not runs or not (runs[0] / "run.json").exists():
        return Trial("before the run directory existed")
    run_dir = runs[0]
    if not (run_dir / "journal.bin").exists():
        return Trial("before the journal existed")
    flushed = read_journal(run_dir).samples
    n = len(flushed["test_time_s"])
    run = labctl.open_run(run_dir)
    status = run.meta["status"]
    trial = Trial(status, flushed=n)
    if len(run.timeseries) != n:  # open_run must read exactly what was flushed
        trial.lost = abs(n - len(run.timeseries))
    if status == "interrupted":
        trial.resumed_status = resume_run(run_dir).status
    final = read_journal(run_dir).samples
    for name, column in flushed.items():
        if len(final[name]) < n:
            trial.lost = max(trial.lost, n - len(final[name]))
        else:
            trial.lost = max(trial.lost, int(np.sum(final[name][:n] != column)))
    after = labctl.open_run(run_dir)
    ts = after.timeseries
    trial.duplicated = int(ts.duplicated(["step_index", "test_time_s"]).sum())
    steps = after.steps
    trial.steps_ok = (list(steps.step_index) == list(range(1, 9))
                      and bool((steps.end_kind != "interrupted").all()))
    return trial


def run_trials(root: Path, count: int, seed: int, max_attempts: int | None = None) -> list[Trial]:
    """Trials until `count` of them killed a run inside it (or `max_attempts` in all)."""
    rng = random.Random(seed)
    trials: list[Trial] = []
    for k in range(max_attempts or 2 * count):
        if sum(t.outcome == "interrupted" for t in trials) >= count:
            break
        folder = root / f"t{k:03d}"
        folder.mkdir()
        trials.append(one_trial(folder, rng.uniform(0.0, RUN_WALL_S)))
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="kills inside a run to reach")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-crash-") as tmp:
        t0 = time.perf_counter()
        trials = run_trials(Path(tmp), args.trials, args.seed)
        wall = time.perf_counter() - t0
    inside = [t for t in trials if t.outcome == "interrupted"]
    recovered = [t for t in inside if t.resumed_status == "completed" and t.steps_ok]
    print(f"kill -9 trials      : {len(trials)} ({len(inside)} inside a run, "
          f"{sum(t.outcome == 'completed' for t in trials)} after it completed, "
          f"{len(trials) - len(inside) - sum(t.outcome == 'completed' for t in trials)} "
          f"before the run existed)")
    print(f"recovered by resume : {len(recovered)} of {len(inside)}")
    print(f"samples flushed     : {sum(t.flushed for t in trials):,} at the kills "
          f"(median {sorted(t.flushed for t in inside)[len(inside) // 2] if inside else 0})")
    print(f"lost per crash      : max {max((t.lost for t in trials), default=0)} samples "
          f"beyond the last flush (goal 0)")
    print(f"duplicated rows     : max {max((t.duplicated for t in trials), default=0)}")
    print(f"wall time           : {wall:.0f} s")


if __name__ == "__main__":
    main()
