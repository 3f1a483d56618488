"""Neware BTS files: binary .nda/.ndax (through PyPI `newarenda`) and CSV exports.

CSV layouts:

* flat, one header row: `DataPoint`/`Record ID`, `Cycle Index`, `Step Index`,
  `Step Type`, `Time` (step time), `Cumulative Time`/`Total Time` (h:m:s),
  `Current(A|mA)`, `Voltage(V|mV)`, `Chg. Cap.(Ah|mAh)`, `DChg. Cap.(...)`,
  `Chg. Energy(...)`, `DChg. Energy(...)`, `Date`.
* three-level (BTS 7 "cycle / step / record" export): a cycle header row
  (`Cycle ID`, `Cap_Chg(mAh)`, `Cap_DChg(mAh)`, ...), a step header row one column in
  (`Step ID`, `Step Name`, `Step Time`, ...), a record header row two columns in
  (`Record ID`, `Time(h:min:s.ms)` = step time, `Voltage(V)`, `Current(mA)`,
  `Capacity(mAh)`, `Energy(mWh)`, `Realtime`), then cycle, step and record rows
  indented the same way. Records carry an unsigned per-step capacity; the step name
  (`..._Chg`, `..._DChg`, `Rest`) tells its direction.

Neware writes discharge current negative; the sign is checked against the file's
own charge/discharge counters either way (`orient_current`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.importers.base import Counter, Parsed, as_ints, fail, orient_current
from labctl.importers.textio import (
    decode,
    find_column,
    first_record_field,
    guess_delimiter,
    head_lines,
    parse_duration_s,
    read_table,
    split,
)
from labctl.importers.timeparse import first_datetime_unix

FMT_NDA = "neware-nda"
FMT_CSV = "neware-csv"


def read_nda(path: Path, data: bytes) -> Parsed:
    cols = None
    if data.startswith(b"PK\x03\x04"):  # .ndax: numpy over whole pages where the layout is known
        from labctl.importers.ndax_fast import read_ndax

        cols = read_ndax(data)
    if cols is not None:
        conv = ["read the .ndax archive's data, data_runInfo and data_step records with numpy "
                "(the layouts newarenda reads, record for record the same values)"]
    else:
        cols = _newarenda_columns(path)
        conv = ["read with newarenda (PyPI) from the binary file"]
    step = cols["Step_Index"]
    step_time = cols["Time"]
    t = _test_time_from_step_time(step_time, step)
    conv.append("test_time_s: the file's step time ('Time', restarting each step) added up "
                "over the steps (a step's first record at the previous step's last time)")
    cur = cols["Current(mA)"] * 1e-3
    qc = cols["Charge_Capacity(mAh)"] * 1e-3
    qd = cols["Discharge_Capacity(mAh)"] * 1e-3
    conv.append("units: mA -> A, mAh -> Ah, mWh -> Wh")
    cur = orient_current(cur, qc, qd, conv, "Current(mA)")
    parsed = Parsed(FMT_NDA, t, cur, cols["Voltage"], step=step, cycle=cols["Cycle"],
                    conversions=conv, charge_ah=Counter(qc, "step"),
                    discharge_ah=Counter(qd, "step"),
                    charge_wh=Counter(cols["Charge_Energy(mWh)"] * 1e-3, "step"),
                    discharge_wh=Counter(cols["Discharge_Energy(mWh)"] * 1e-3, "step"))
    parsed.step_labels = cols["Status"]
    if cols.get("start") is not None:
        parsed.start_unix_s, parsed.metadata["start_time"] = cols["start"]
        conv.append("unix_time_s: the first record's Timestamp + test_time_s")
    temp = cols.get("T1")
    if temp is not None and np.any(temp != 0):
        parsed.temperature_c = temp
        conv.append("temperature_c: auxiliary channel T1 (degC)")
    return parsed


def _newarenda_columns(path: Path) -> dict[str, Any]:
    """newarenda's frame as float64/int64 columns (per record in Python: the fallback)."""
    try:
        import NewareNDA
    except ImportError:
        raise fail(path, "", "reading Neware .nda/.ndax needs the `newarenda` package: "
                   "pip install 'labctl[import]'", FMT_NDA) from None
    # the cycle numbers the file holds; newarenda's software renumbering (a per-record
    # Python loop) costs 2/3 of its read time
    df = NewareNDA.read(str(path), software_cycle_number=False, log_level="ERROR")
    if len(df) == 0:
        raise fail(path, "", "no data records in the file", FMT_NDA)
    cols: dict[str, Any] = {
        name: df[name].to_numpy(np.float64) for name in (
            "Time", "Current(mA)", "Voltage", "Charge_Capacity(mAh)", "Discharge_Capacity(mAh)",
            "Charge_Energy(mWh)", "Discharge_Energy(mWh)")}
    cols["Step_Index"] = (df["Step_Index"] if "Step_Index" in df else df["Step"]).to_numpy(
        np.int64)
    cols["Cycle"] = df["Cycle"].to_numpy(np.int64)
    cols["Status"] = df["Status"].astype(str).to_numpy(object)
    if "Timestamp" in df:
        ts0 = df["Timestamp"].iloc[0]
        cols["start"] = (float(ts0.timestamp()), str(ts0))
    if "T1" in df:
        cols["T1"] = df["T1"].to_numpy(np.float64)
    return cols


def _test_time_from_step_time(step_time: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Test time from a step time that restarts at 0 in each step."""
    n = len(step_time)
    start = np.r_[True, step[1:] != step[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(start)
    ends = np.r_[starts[1:] - 1, n - 1]
    durations = step_time[ends] - step_time[starts]
    offsets = np.r_[0.0, np.cumsum(durations)[:-1]]
    sizes = np.diff(np.r_[starts, n])  # per-step values repeated, not gathered per record
    out = step_time - np.repeat(step_time[starts], sizes)
    out += np.repeat(offsets, sizes)
    return out


def read_csv(path: Path, data: bytes) -> Parsed:
    lines = head_lines(data)
    if lines and lines[0].strip().lower().startswith("cycle id"):
        return _read_three_level(path, data)
    h = next((k for k, ln in enumerate(lines[:10]) if "current" in ln.lower()
              and "voltage" in ln.lower()), None)
    if h is None:
        raise fail(path, "", "no Neware header row (DataPoint, Cycle Index, Step Index, "
                   "Current, Voltage ...)", FMT_CSV)
    delim = guess_delimiter(lines[h])
    names = split(lines[h], delim)

    def need(role: str, *bases: str) -> tuple[str, float]:
        hit = find_column(names, *bases)
        if hit is None:
            raise fail(path, f"line {h + 1}", f"no {role} column ({' / '.join(bases)})", FMT_CSV)
        return hit

    cur, f_cur = need("current", "Current")
    volt, f_volt = need("voltage", "Voltage")
    cyc, _ = need("cycle", "Cycle Index", "Cycle", "Cycle ID")
    step, _ = need("step", "Step Index", "Step ID", "Step")
    time_col = find_column(names, "Cumulative Time", "Total Time", "Test Time")
    date = find_column(names, "Date", "Realtime", "Real Time", "System Time")
    opt = {role: find_column(names, *bases) for role, bases in (
        ("qc", ("Chg. Cap.", "Charge Capacity", "Chg Cap")),
        ("qd", ("DChg. Cap.", "Discharge Capacity", "DChg Cap")),
        ("ec", ("Chg. Energy", "Charge Energy", "Chg Energy")),
        ("ed", ("DChg. Energy", "Discharge Energy", "DChg Energy")),
        ("label", ("Step Type", "Step Name")))}
    wanted = {cur: "f", volt: "f", cyc: "f", step: "f"}
    if time_col:
        wanted[time_col[0]] = "s"
    elif date:
        wanted[date[0]] = "s"
    else:
        raise fail(path, f"line {h + 1}", "no test time column (Cumulative Time / Total Time) "
                   "and no Date column", FMT_CSV)
    first_date = first_record_field(lines, h, names, date[0], delim) if date else None
    if date and (not time_col or first_date is None):
        wanted[date[0]] = "s"
    for role, hit in opt.items():
        if hit:
            wanted[hit[0]] = "s" if role == "label" else "f"
    cols = read_table(path, data, h, delim, wanted, FMT_CSV)
    conv = []
    if time_col:
        t = parse_duration_s(cols[time_col[0]], path, FMT_CSV, time_col[0])
        conv.append(f"time: {time_col[0]!r} (h:m:s text) -> seconds")
    else:
        t = _dates_to_seconds(cols[date[0]], path)
        conv.append(f"time: from {date[0]!r} (date text) -> seconds since the first record")
    qc = cols[opt["qc"][0]] * opt["qc"][1] if opt["qc"] else None
    qd = cols[opt["qd"][0]] * opt["qd"][1] if opt["qd"] else None
    current = orient_current(cols[cur] * f_cur, qc, qd, conv, cur)
    units = sorted({h_ for h_, f in [(cur, f_cur), (volt, f_volt)] + [v for v in opt.values()
                                                                      if v and v[1] != 1.0]
                    if f != 1.0})
    if units:
        conv.append(f"units to SI (A, V, Ah, Wh): {', '.join(units)}")
    parsed = Parsed(FMT_CSV, t, current, cols[volt] * f_volt,
                    step=as_ints(path, step, cols[step], FMT_CSV, h + 2),
                    cycle=as_ints(path, cyc, cols[cyc], FMT_CSV, h + 2),
                    conversions=conv, first_line=h + 2)
    for role, attr in (("qc", "charge_ah"), ("qd", "discharge_ah"), ("ec", "charge_wh"),
                       ("ed", "discharge_wh")):
        if opt[role]:
            setattr(parsed, attr, Counter(cols[opt[role][0]] * opt[role][1], "step"))
    if opt["qc"] or opt["ec"]:
        conv.append("Neware's Chg./DChg. counters restart at each step")
    if opt["label"]:
        parsed.step_labels = cols[opt["label"][0]]
    if date and len(t):
        if first_date is None or date[0] in cols:
            first_date = str(cols[date[0]][0].as_py())
        start = first_datetime_unix(first_date)
        if start is not None:
            parsed.start_unix_s = start
            parsed.metadata["start_time"] = first_date
            conv.append(f"unix_time_s: the first record's {date[0]!r} (no time zone in the "
                        "file: taken as UTC) + test_time_s")
    return parsed


def _dates_to_seconds(col, path: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        ts = pc.strptime(pc.utf8_trim_whitespace(col), format="%Y-%m-%d %H:%M:%S", unit="ms")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise fail(path, "", "dates not in the 'YYYY-MM-DD hh:mm:ss' form", FMT_CSV) from None
    ms = ts.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
    return (ms - ms[0]) / 1000.0 if len(ms) else ms


# -- three-level CSV --------------------------------------------------------------------------

def _direction(name: str) -> int:
    low = name.lower().replace(" ", "_")
    if "dchg" in low or "discharge" in low:
        return -1
    if "chg" in low or "charge" in low:
        return 1
    return 0


def _read_three_level(path: Path, data: bytes) -> Parsed:
    text = decode(data)
    lines = text.splitlines()
    if len(lines) < 4:
        raise fail(path, f"line {len(lines) + 1}", "a three-level export needs the cycle, "
                   "step and record header rows and data", FMT_CSV)
    delim = guess_delimiter(lines[0])
    cyc_names = split(lines[0], delim)
    step_names = split(lines[1], delim)[1:]
    rec_names = split(lines[2], delim)[2:]

    def col(names: list[str], line_no: int, *bases: str) -> tuple[int, float]:
        hit = find_column(names, *bases)
        if hit is None:
            raise fail(path, f"line {line_no}", f"no {' / '.join(bases)} column", FMT_CSV)
        return names.index(hit[0]), hit[1]

    r_time, _ = col(rec_names, 3, "Time")
    r_v, f_v = col(rec_names, 3, "Voltage")
    r_i, f_i = col(rec_names, 3, "Current")
    r_q, f_q = col(rec_names, 3, "Capacity")
    r_e = find_column(rec_names, "Energy")
    r_date = find_column(rec_names, "Realtime", "Real Time", "Date")
    s_id, _ = col(step_names, 2, "Step ID")
    s_name, _ = col(step_names, 2, "Step Name", "Step Type")
    c_id, _ = col(cyc_names, 1, "Cycle ID")
    c_qc = find_column(cyc_names, "Cap_Chg", "Chg Cap", "Charge Capacity")
    c_qd = find_column(cyc_names, "Cap_DChg", "DChg Cap", "Discharge Capacity")
    rows: list[tuple[float, ...]] = []
    cycle_rows: dict[int, tuple[float, float]] = {}
    cycle, step, step_dir, step_label = 0, 0, 0, ""
    step_times: list[str] = []
    labels: list[str] = []
    first_date = None
    for k, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue
        f = split(line, delim)
        try:
            if f[0]:
                cycle = int(float(f[c_id]))
                if c_qc and c_qd:
                    cycle_rows[cycle] = (float(f[cyc_names.index(c_qc[0])]) * c_qc[1],
                                         float(f[cyc_names.index(c_qd[0])]) * c_qd[1])
            elif len(f) > 1 and f[1]:
                g = f[1:]
                step = int(float(g[s_id]))
                step_label = g[s_name]
                step_dir = _direction(step_label)
            else:
                g = f[2:]
                if cycle == 0 or step == 0:
                    raise fail(path, f"line {k}", "a record row before any cycle and step row",
                               FMT_CSV)
                step_times.append(g[r_time])
                current = float(g[r_i]) * f_i
                if step_dir:
                    current = abs(current) * step_dir
                q = abs(float(g[r_q])) * f_q
                e = abs(float(g[r_e[0] and rec_names.index(r_e[0])])) * r_e[1] if r_e else 0.0
                rows.append((cycle, step, float(g[r_v]) * f_v, current, q, e, step_dir))
                labels.append(step_label)
                if first_date is None and r_date:
                    first_date = g[rec_names.index(r_date[0])]
        except (ValueError, IndexError):
            raise fail(path, f"line {k}", "expected a cycle row (number in column 1), a step "
                       "row (column 2) or a record row (column 3) with numbers where the "
                       "headers say", FMT_CSV) from None
    if not rows:
        raise fail(path, "", "no record rows", FMT_CSV)
    arr = np.array(rows, dtype=np.float64)
    step_no = arr[:, 1].astype(np.int64)
    import pyarrow as pa

    st = parse_duration_s(pa.chunked_array([pa.array(step_times)]), path, FMT_CSV, "Time")
    # a new step wherever the step id changes, also between cycles
    key = arr[:, 0] * 1e6 + arr[:, 1]
    t = _test_time_from_step_time(st, key.astype(np.int64))
    d = arr[:, 6]
    conv = ["three-level CSV: cycle, step and record rows; record Time is step time, added "
            "up over the steps into test time",
            "current: unsigned or signed, direction from the step name (..._Chg +, ..._DChg -)",
            "capacity/energy: the record's per-step counter, charge or discharge by the step "
            "name", "units to SI where the headers say mA, mAh, mWh, mV"]
    parsed = Parsed(FMT_CSV, t, arr[:, 3], arr[:, 2], step=step_no,
                    cycle=arr[:, 0].astype(np.int64), conversions=conv,
                    charge_ah=Counter(np.where(d > 0, arr[:, 4], 0.0), "step"),
                    discharge_ah=Counter(np.where(d < 0, arr[:, 4], 0.0), "step"))
    if r_e:
        parsed.charge_wh = Counter(np.where(d > 0, arr[:, 5], 0.0), "step")
        parsed.discharge_wh = Counter(np.where(d < 0, arr[:, 5], 0.0), "step")
    parsed.step_labels = np.asarray(labels, dtype=object)
    parsed.metadata["vendor_cycles"] = {str(c): {"charge_ah": q[0], "discharge_ah": q[1]}
                                        for c, q in cycle_rows.items()}
    if first_date:
        start = first_datetime_unix(first_date)
        if start is not None:
            parsed.start_unix_s = start
            parsed.metadata["start_time"] = first_date
    return parsed
