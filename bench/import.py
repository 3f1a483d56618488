"""Import speed: rows per second per format, and cellpy's time on the same files.

1. Every vendor sample in ../shared/vendor-data/: labctl's read (file -> labctl's
   columns) and full import (plus the run directory: journal, Parquet tables, steps,
   cycles), best of 3; and, where cellpy reads the file, `cellpy.get(...)` (its read
   plus its step table and summary: what it does by default) in the same run.
2. Text formats at scale: a file of ROWS records (default 1 000 000) written in each
   text layout, read and imported.

cellpy is not a labctl dependency (it pins pandas < 3): give the Python of an
environment that has it with --cellpy-python (default: $CELLPY_PYTHON), e.g.
`python -m venv /tmp/cp && /tmp/cp/bin/pip install cellpy`.

Usage: python bench/import.py [--rows N] [--cellpy-python PATH] [--skip-large]
       [--skip-samples] [--repeats N] [--only FORMAT ...]

Prints wall and CPU time (medians), rows/s, and cellpy's time over labctl's (x wall,
x cpu) per file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labctl.importers.api import import_file, parse_file  # noqa: E402
from labctl.importers.base import to_samples  # noqa: E402

VENDOR = (REPO / ".." / "shared" / "vendor-data").resolve()
SAMPLES = [  # file, cellpy instrument, cellpy keyword arguments
    ("20160805_test001_45_cc_01.res", "arbin_res", {}),
    ("biol.mpr", "biologics_mpr", {}),
    ("maccor_001.txt", "maccor_txt", {"model": "one"}),
    ("neware_uio.csv", "neware_txt", {"model": "one"}),
    ("20260302_IFE_BTS85_2_9_8_1.ndax", "neware_nda", {}),
    ("batmo_bdf.csv", "batmo_bdf", {}),
]

CELLPY_SCRIPT = r"""
import json, sys, time, warnings, logging, resource
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
import cellpy
def cpu():  # this process (all threads) plus finished child processes (mdb-export)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime
out = {}
for path, inst, kw in json.loads(sys.argv[1]):
    walls, cpus = [], []
    for _ in range(3):
        t, c0 = time.perf_counter(), cpu()
        try:
            c = cellpy.get(path, instrument=inst, **kw)
            n = len(c.data.raw)
        except Exception as e:
            out[path] = {"error": type(e).__name__ + ": " + str(e)[:120]}
            break
        walls.append(time.perf_counter() - t)
        cpus.append(cpu() - c0)
        out[path] = {"seconds": sorted(walls)[len(walls) // 2],
                     "cpu_seconds": sorted(cpus)[len(cpus) // 2], "rows": n}
print(json.dumps(out))
"""


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its finished children (mdb-export)."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def median_of(fn, n: int = 3) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds: see cpu_seconds)."""
    walls, cpus = [], []
    for _ in range(n):
        t, c = time.perf_counter(), cpu_seconds()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    return sorted(walls)[n // 2], sorted(cpus)[n // 2]


def time_file(path: Path, repeats: int = 3
              ) -> tuple[int, tuple[float, float], tuple[float, float]]:
    """(rows, (wall, CPU) seconds of the read, (wall, CPU) of the full import)."""
    def read():
        parsed, _ = parse_file(path)
        if len(parsed.time_s):
            to_samples(parsed, path)

    rows = import_file(path, tempfile.mkdtemp(prefix="labctl-bench-")).rows

    def full():
        root = tempfile.mkdtemp(prefix="labctl-bench-")
        try:
            import_file(path, root, force=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return rows, median_of(read, repeats), median_of(full, repeats)


def cellpy_times(python: str | None) -> dict[str, dict]:
    if not python:
        return {}
    jobs = [(str(VENDOR / f), inst, kw) for f, inst, kw in SAMPLES]
    proc = subprocess.run([python, "-c", CELLPY_SCRIPT, json.dumps(jobs)], capture_output=True,
                          text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"cellpy run failed: {proc.stderr.strip().splitlines()[-1:]}")
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- large text files --------------------------------------------------------------------

def _profile(n: int) -> dict[str, np.ndarray]:
    """n records of a 1 s cycling profile: 3600 s charge, 600 s rest, 3600 s discharge."""
    k = np.arange(n)
    period = 7800
    pos = k % period
    step = np.where(pos < 3600, 1, np.where(pos < 4200, 2, 3))
    cur = np.where(step == 1, 0.5, np.where(step == 3, -0.5, 0.0))
    step_t = np.where(step == 1, pos + 1, np.where(step == 2, pos - 3599, pos - 4199)).astype(float)
    q = np.abs(cur) * step_t / 3600
    return {"t": k + 1.0, "step_t": step_t, "cycle": k // period + 1, "step": step, "i": cur,
            "v": 3.6 + 0.2 * np.sign(cur) * q, "q": q, "qc": np.where(cur > 0, q, 0.0),
            "qd": np.where(cur < 0, q, 0.0)}


def _write(path: Path, header: str, columns: list[np.ndarray], fmts: list[str], sep: str) -> None:
    import pandas as pd

    df = pd.DataFrame({str(j): c for j, c in enumerate(columns)})
    with open(path, "w", encoding="latin-1", newline="\n") as f:
        f.write(header)
        df.to_csv(f, sep=sep, header=False, index=False, float_format="%.6f")


def large_files(folder: Path, n: int) -> list[tuple[str, Path]]:
    p = _profile(n)
    days = (p["t"] // 86400).astype(int)
    rem = p["t"] % 86400
    out = []
    maccor = folder / "maccor_large.txt"
    tt = np.char.add(np.char.add(days.astype(str), "d "), np.char.add(
        np.char.zfill((rem // 3600).astype(int).astype(str), 2), np.char.add(":", np.char.add(
            np.char.zfill(((rem % 3600) // 60).astype(int).astype(str), 2), np.char.add(":", (
                rem % 60).astype(str)))))).astype(object)
    state = np.where(p["i"] > 0, "C", np.where(p["i"] < 0, "D", "R")).astype(object)
    _write(maccor, "Today's Date:\t1 Jan 2022\nFilename:\tbench\nProcedure:\tbench.000\n"
           "Rec#\tCyc#\tStep\tTestTime\tStepTime\tAmp-hr\tWatt-hr\tAmps\tVolts\tState\tES\tDPt Time\n",
           [np.arange(1, n + 1), p["cycle"] - 1, p["step"], tt, tt, p["q"], p["q"] * 3.6,
            np.abs(p["i"]), p["v"], state, np.zeros(n, int),
            np.full(n, "01/01/2022 00:00:00", dtype=object)], [], "\t")
    out.append(("maccor", maccor))
    neware = folder / "neware_large.csv"
    hms = np.char.add(np.char.zfill((p["t"] // 3600).astype(int).astype(str), 2), np.char.add(
        ":", np.char.add(np.char.zfill(((p["t"] % 3600) // 60).astype(int).astype(str), 2),
                         np.char.add(":", np.char.zfill((p["t"] % 60).astype(int).astype(str),
                                                        2))))).astype(object)
    _write(neware, "DataPoint,Cycle Index,Step Index,Step Type,Cumulative Time,Current(A),"
           "Voltage(V),Chg. Cap.(Ah),DChg. Cap.(Ah)\n",
           [np.arange(1, n + 1), p["cycle"], p["step"] + 3 * (p["cycle"] - 1),
            np.where(p["i"] > 0, "CC Chg", np.where(p["i"] < 0, "CC DChg", "Rest")).astype(object),
            hms, p["i"], p["v"], p["qc"], p["qd"]], [], ",")
    out.append(("neware-csv", neware))
    bdf = folder / "bdf_large.csv"
    _write(bdf, "Test Time / s,Current / A,Voltage / V,Cycle Count / 1,Step Index / 1,"
           "Charge Capacity / Ah,Discharge Capacity / Ah\n",
           [p["t"], p["i"], p["v"], p["cycle"], p["step"], p["qc"], p["qd"]], [], ",")
    out.append(("bdf", bdf))
    pec = folder / "pec_large.csv"
    _write(pec, "#RESULTS CHECK\n#END RESULTS CHECK\nTotal_Time_Seconds,Step_Time_Seconds,Cycle,"
           "Step,Voltage_mV,Current_mA,Charge_Capacity_mAh,Discharge_Capacity_mAh\n",
           [p["t"], p["step_t"], p["cycle"], p["step"], p["v"] * 1e3, p["i"] * 1e3,
            p["qc"] * 1e3, p["qd"] * 1e3], [], ",")
    out.append(("pec", pec))
    arbin = folder / "arbin_large.csv"
    _write(arbin, "Data_Point,Test_Time(s),Step_Time(s),Cycle_Index,Step_Index,Current(A),"
           "Voltage(V),Charge_Capacity(Ah),Discharge_Capacity(Ah)\n",
           [np.arange(1, n + 1), p["t"], p["step_t"], p["cycle"], p["step"], p["i"], p["v"],
            p["qc"], p["qd"]], [], ",")
    out.append(("arbin-csv", arbin))
    mpt = folder / "biologic_large.mpt"
    _write(mpt, "EC-Lab ASCII FILE\nNb header lines : 4\n\ntime/s\tEwe/V\tI/mA\tdq/mA.h\tNs\t"
           "cycle number\n",
           [p["t"], p["v"], p["i"] * 1e3, p["i"] * 1e3 / 3600, p["step"], p["cycle"] - 1], [],
           "\t")
    out.append(("biologic-mpt", mpt))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cellpy-python", default=os.environ.get("CELLPY_PYTHON"))
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-samples", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="large text formats to time (default: all)")
    args = ap.parse_args()

    if args.skip_samples:
        return _large(args)
    print(f"vendor samples ({VENDOR}); medians of 3; CPU = this process's CPU time, "
          "all threads, + child processes (the machine is shared: wall time is noisy)")
    cp = cellpy_times(args.cellpy_python)
    print(f"{'file':30s} {'format':12s} {'rows':>7s} | {'read wall':>9s} {'cpu':>6s} "
          f"{'rows/s':>9s} | {'import wall':>11s} {'cpu':>6s} {'rows/s':>9s} "
          f"{'cpu rows/s':>10s} | {'cellpy wall':>11s} {'cpu':>6s} {'x wall':>6s} "
          f"{'x cpu':>6s}")
    for name, _, _ in SAMPLES:
        path = VENDOR / name
        rows, (read_w, read_c), (full_w, full_c) = time_file(path)
        fmt = parse_file(path)[0].fmt
        c = cp.get(str(path), {})
        cs, cc = c.get("seconds"), c.get("cpu_seconds")
        print(f"{name[:30]:30s} {fmt:12s} {rows:7d} | {read_w:9.3f} {read_c:6.3f} "
              f"{rows / read_w:9.0f} | {full_w:11.3f} {full_c:6.3f} {rows / full_w:9.0f} "
              f"{rows / max(full_c, 1e-9):10.0f} | "
              + (f"{cs:11.3f} {cc:6.3f} {cs / full_w:6.1f} {cc / max(full_c, 1e-9):6.1f}"
                 if cs else f"{'-':>11s} {'-':>6s} {'-':>6s} {'-':>6s}")
              + (f"  (cellpy: {c['error']})" if "error" in c else ""))
    if not args.cellpy_python:
        print("(cellpy not timed: give --cellpy-python or $CELLPY_PYTHON)")
    _arbin_readers()
    if not args.skip_large:
        _large(args)


def _arbin_readers() -> None:
    """The Arbin sample's Channel_Normal_Table through each reader the importer has:
    labctl's Jet page reader (the columns the importer uses), mdb-export + pyarrow's
    CSV parse, and access-parser (pure Python, once: it is slow)."""
    import io

    import pyarrow.csv as pacsv

    from labctl.importers import jet_reader

    path, table = VENDOR / SAMPLES[0][0], "Channel_Normal_Table"
    used = ("Test_ID", "Data_Point", "Test_Time", "Current", "Voltage", "Cycle_Index",
            "Step_Index", "Charge_Capacity", "Discharge_Capacity", "Charge_Energy",
            "Discharge_Energy", "DateTime")

    def jet() -> None:
        cols = jet_reader.read_tables(path, [table])[table]
        for name in used:
            cols[name]

    def mdb() -> None:
        out = subprocess.run(["mdb-export", str(path), table], capture_output=True, check=True)
        pacsv.read_csv(io.BytesIO(out.stdout))

    print(f"\n{path.name} {table}, CPU s (median of 5): ", end="")
    print(f"Jet page reader {median_of(jet, 5)[1]:.4f}", end="")
    if shutil.which("mdb-export"):
        print(f" | mdb-export + pyarrow {median_of(mdb, 5)[1]:.4f}", end="")
    try:
        from access_parser import AccessParser

        def ap() -> None:
            AccessParser(str(path)).parse_table(table)
        print(f" | access-parser {median_of(ap, 1)[1]:.3f}")
    except ImportError:
        print(" | access-parser not installed")


def _large(args: argparse.Namespace) -> None:
    print(f"\ntext formats at {args.rows} rows (medians of {args.repeats}; M rows/s by wall "
          "and by CPU time)")
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        for fmt, path in large_files(Path(tmp), args.rows):
            if args.only and fmt not in args.only:
                continue
            rows, (read_w, read_c), (full_w, full_c) = time_file(path, repeats=args.repeats)
            size = path.stat().st_size / 1e6
            print(f"{fmt:13s} {rows:9d} rows {size:6.1f} MB | read wall {read_w:5.2f} s "
                  f"cpu {read_c:5.2f} s ({rows / read_w / 1e6:4.2f} / {rows / read_c / 1e6:4.2f}"
                  f" M rows/s) | import wall {full_w:5.2f} s cpu {full_c:5.2f} s "
                  f"({rows / full_w / 1e6:4.2f} / {rows / full_c / 1e6:4.2f} M rows/s)")

if __name__ == "__main__":
    main()
