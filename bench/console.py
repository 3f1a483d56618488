"""Console speed (issue 17): not a test, prints figures.

1. A run page for a 1,000,000-sample run: the page (HTML) and its plot data
   (decimated V/I/T, per-cycle, dQ/dV) answer in under 0.5 s each.
2. 64 channels running at once (`labctl run --channel 1 ... --channel 64 --speed 1`):
   the Benches stream updates every tile every second, and the console process
   stays under 20 % of one core (CPU time of the console process / wall time).

    python bench/console.py [--seconds 20] [--keep DIR]

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), e.get("PYTHONPATH")]))
    return e


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labctl.cli", *args], cwd=REPO, env=env(), **kw)


def start_console(results: Path) -> tuple[subprocess.Popen, str]:
    proc = cli("console", "--results", str(results), "--port", "0", stdout=subprocess.PIPE,
               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    raise SystemExit("the console did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def timed_get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, len(body)


def million_sample_run(results: Path) -> Path:
    text = (REPO / "procedures" / "quickstart.yaml").read_text()
    text = re.sub(r"^log: .*$", "log: every 0.01 s", text, flags=re.M)  # ~1.09 M samples
    proc_file = results.parent / "quickstart-fine.yaml"
    proc_file.write_text(text)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "labctl.cli", "run", str(proc_file), "--results",
                          str(results), "--json"], cwd=REPO, env=env(), capture_output=True,
                         text=True, check=True)
    info = json.loads(out.stdout)
    print(f"  recorded {info['summary']['n_samples']:,} samples in "
          f"{time.perf_counter() - t0:.1f} s (virtual time)")
    return Path(info["run_dir"])


def bench_run_page(root: Path) -> None:
    results = root / "big"
    results.mkdir()
    print("1. run page of a 1,000,000-sample run")
    run = million_sample_run(results)
    console, url = start_console(results)
    try:
        time.sleep(8)  # the console imports pandas/scipy in the background after it starts
        for what, path in (("page (HTML)", f"/runs/{run.name}"),
                           ("plot data (JSON)", f"/runs/{run.name}/plots")):
            times, cpu = [], []
            for _ in range(5):
                c0 = cpu_seconds(console.pid)
                dt, size = timed_get(url + path)
                times.append(dt)
                cpu.append(cpu_seconds(console.pid) - c0)
            print(f"  {what}: first view {times[0] * 1000:.0f} ms wall / {cpu[0] * 1000:.0f} ms "
                  f"console CPU, again (median) {sorted(times)[2] * 1000:.0f} ms, "
                  f"{size / 1e3:.0f} kB  (target < 500 ms)")
        sys.path.insert(0, str(REPO))
        from labctl.console.app import _plots

        _plots(run, 4000)  # imports
        times, cpu = [], []
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            _plots(run, 4000)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"  plot data computed without the cache: median {sorted(times)[2] * 1000:.0f} ms wall,"
              f" {sorted(cpu)[2] * 1000:.0f} ms CPU (read 6 columns, decimate 3 traces, dQ/dV, "
              f"per cycle); load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        with urllib.request.urlopen(f"{url}/runs/{run.name}/plots", timeout=60) as r:
            plots = json.load(r)
        longest = max(len(t["x"]) for t in plots["traces"].values())
        print(f"  points per trace sent: {longest:,} of {plots['n_samples']:,} samples")
    finally:
        console.terminate()
        console.wait(timeout=20)


def bench_64_channels(root: Path, seconds: float) -> None:
    results = root / "many"
    results.mkdir()
    print(f"2. 64 channels running at once, Benches stream watched for {seconds:.0f} s")
    channels = [a for i in range(1, 65) for a in ("--channel", str(i))]
    text = (REPO / "procedures" / "quickstart.yaml").read_text()
    proc_file = root / "quickstart-1s.yaml"  # a sample every second: a new reading each second
    proc_file.write_text(re.sub(r"^log: .*$", "log: every 1 s", text, flags=re.M))
    runs = cli("run", str(proc_file), *channels, "--speed", "1", "--results",
               str(results), "--json", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    console, url = start_console(results)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/events/benches", timeout=30) as r:
                first = json.loads(r.readline().decode()[len("data: "):])
            if sum(t["active"] for t in first) == 64:
                break
            time.sleep(1)
        else:
            raise SystemExit("the 64 runs did not all start")
        events, changed, history = 0, [], []
        cpu0, t0 = cpu_seconds(console.pid), time.monotonic()
        with urllib.request.urlopen(url + "/events/benches", timeout=30) as r:
            while time.monotonic() - t0 < seconds:
                line = r.readline().decode()
                if not line.startswith("data: "):
                    continue
                tiles = {t["run_id"]: t for t in json.loads(line[6:]) if t["active"]}
                events += 1
                history.append((time.monotonic(), tiles))
                # tiles whose reading is newer than the update about one second before
                before = [h for when, h in history if when <= history[-1][0] - 0.95]
                if before:
                    changed.append(sum(1 for k, t in tiles.items()
                                       if before[-1].get(k, {}).get("test_time_s") != t["test_time_s"]))
                last = tiles
        wall = time.monotonic() - t0
        cpu = cpu_seconds(console.pid) - cpu0
        print(f"  {events} updates in {wall:.1f} s ({events / wall:.2f} per second), "
              f"{len(last)} active tiles; tiles with a newer reading than one second before: "
              f"median {sorted(changed)[len(changed) // 2] if changed else 0} of 64 "
              f"(each run writes status.json at most once a second)")
        print(f"  console CPU: {cpu:.2f} s in {wall:.1f} s = {100 * cpu / wall:.1f} % of one core "
              f"(target < 20 %)")
    finally:
        subprocess.run([sys.executable, "-m", "labctl.cli", "stop", "--all", "--results",
                        str(results)], cwd=REPO, env=env(), capture_output=True)
        console.terminate()
        console.wait(timeout=20)
        try:
            runs.wait(timeout=60)
        except subprocess.TimeoutExpired:
            runs.terminate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--keep", help="keep the results stores in this folder")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="labctl-console-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        bench_run_page(root)
        bench_64_channels(root, args.seconds)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
