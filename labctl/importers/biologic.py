"""BioLogic EC-Lab files: binary .mpr (through PyPI `galvani`) and .mpt text exports.

Columns used (as EC-Lab names them): `time/s`; `I/mA`, `<I>/mA` or `control/mA`;
`Ewe/V` or `<Ewe>/V`; `dq/mA.h` (the charge moved since the previous record: the
instrument's own integration, split by sign into charge and discharge capacity);
`Energy charge/W.h`, `Energy discharge/W.h`; `cycle number` (0-based, +1); `Ns`
(sequence number = step); `Temperature/°C`; impedance rows (`freq/Hz` > 0 with
`Re(Z)/Ohm` and `-Im(Z)/Ohm`, or `|Z|/Ohm` and `Phase(Z)/deg`) also go to a `spectra`
record table, one spectrum per frequency sweep.

Sign: EC-Lab's current is positive for an oxidation at the working electrode;
that is taken as charge (for a half cell with a negative electrode as working
electrode, "charge" then means delithiation: the file's own direction).

.mpr files from EC-Lab versions whose data columns galvani does not know yet are
refused with a message to export them as .mpt text, which is read here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from labctl.importers.base import Counter, Parsed, fail
from labctl.importers.spectra import concat_records, spectrum_records
from labctl.importers.textio import head_lines, read_table, split

FMT_MPR = "biologic-mpr"
FMT_MPT = "biologic-mpt"
_CURRENT = ("I/mA", "<I>/mA", "control/mA", "I/A")
_VOLTAGE = ("Ewe/V", "<Ewe>/V", "Ecell/V", "<Ecell>/V")


def _pick(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


class _Views(io.BytesIO):
    """The file for galvani: large reads (its data module) as views of the bytes, not
    copies. galvani reads each module with read() and slices the data module again
    before its np.frombuffer: two copies of the sample's 3.6 MB module, ~5 ms of CPU of
    a 21 ms import (fresh pages included). A memoryview serves both. Small reads stay
    bytes (galvani concatenates header bytes)."""

    _VIEW_FROM = 65536

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._view = memoryview(data)

    def read(self, size: int | None = -1) -> Any:
        if size is None or size < self._VIEW_FROM:
            return super().read(size)
        pos = self.tell()
        out = self._view[pos:pos + size]
        self.seek(pos + len(out))
        return out


def read_mpr(path: Path, data: bytes) -> Parsed:
    try:
        from galvani import BioLogic
    except ImportError:
        raise fail(path, "", "reading .mpr needs the `galvani` package: pip install "
                   "'labctl[import]'", FMT_MPR) from None
    try:
        # the bytes already read (and hashed), not the path: what is stored is what was hashed
        try:
            mpr = BioLogic.MPRfile(_Views(data))
        except (TypeError, AttributeError):  # a galvani that needs bytes, not views
            mpr = BioLogic.MPRfile(io.BytesIO(data))
    except NotImplementedError as exc:
        raise fail(path, "data module", f"galvani cannot read this EC-Lab version's data "
                   f"({exc}); export the file as text (.mpt) in EC-Lab and import that",
                   FMT_MPR) from None
    except (ValueError, KeyError, IndexError, EOFError, OSError) as exc:
        raise fail(path, "", f"not a readable .mpr file ({type(exc).__name__}: "
                   f"{str(exc)[:160]}); damaged or cut short", FMT_MPR) from None
    d = mpr.data
    cols = {name: np.asarray(d[name]) for name in d.dtype.names}
    parsed = _from_columns(path, FMT_MPR, cols)
    parsed.conversions.insert(0, "read with galvani (PyPI) from the binary file")
    stamp = getattr(mpr, "timestamp", None)
    if stamp is not None:
        from datetime import UTC

        parsed.start_unix_s = stamp.replace(tzinfo=UTC).timestamp() if stamp.tzinfo is None \
            else stamp.timestamp()
        parsed.metadata["start_time"] = str(stamp)
        parsed.conversions.append("unix_time_s: the file's acquisition start (local time "
                                  "taken as UTC) + time/s")
    return parsed


def read_mpt(path: Path, data: bytes) -> Parsed:
    lines = head_lines(data)
    h = 0
    if lines and lines[0].strip().lower().startswith("ec-lab ascii file"):
        for ln in lines[:5]:
            if ln.lower().startswith("nb header lines"):
                try:
                    h = int(ln.split(":")[1].strip()) - 1
                except (IndexError, ValueError):
                    raise fail(path, "line 2", f"{ln.strip()!r}: expected 'Nb header lines : N'",
                               FMT_MPT) from None
    if h >= len(lines) or h < 0:
        raise fail(path, f"line {h + 1}", "the header line announced is missing (file cut "
                   "short?)", FMT_MPT)
    names = split(lines[h], "\t")
    if "time/s" not in names:
        raise fail(path, f"line {h + 1}", "no 'time/s' column in the header", FMT_MPT)
    first = lines[h + 1] if h + 1 < len(lines) else ""
    decimal_comma = "," in first and "." not in first.replace("E", "").replace("e", "")
    wanted = {n: "f" for n in names if n and n not in ("mode", "ox/red", "error",
                                                          "control changes", "Ns changes",
                                                          "counter inc.")}
    cols = read_table(path, data, h, "\t", wanted, FMT_MPT, decimal_comma=decimal_comma)
    parsed = _from_columns(path, FMT_MPT, cols)
    parsed.first_line = h + 2
    if decimal_comma:
        parsed.conversions.insert(0, "decimal commas read as points")
    meta = _mpt_meta(lines[:h])
    start = meta.pop("_start_unix_s", None)
    if start is not None:
        parsed.start_unix_s = start
        parsed.conversions.append("unix_time_s: 'Acquisition started on' (local time taken as "
                                  "UTC) + time/s")
    parsed.metadata.update(meta)
    return parsed


def _mpt_meta(lines: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for ln in lines:
        key, sep, value = ln.partition(" : ")
        key = key.strip().lower()
        if not sep:
            continue
        if key in ("acquisition started on", "acquisition started"):
            from labctl.importers.timeparse import first_datetime_unix

            meta["start_time"] = value.strip()
            start = first_datetime_unix(value.strip())
            if start is not None:
                meta["_start_unix_s"] = start
        elif key in ("run on channel", "channel"):
            meta["channel"] = value.strip()
        elif key in ("electrode material", "comments", "mass of active material", "cell"):
            meta[key.replace(" ", "_")] = value.strip()
    return meta


def _from_columns(path: Path, fmt: str, cols: dict[str, np.ndarray]) -> Parsed:
    names = list(cols)
    cur_name, volt_name = _pick(names, _CURRENT), _pick(names, _VOLTAGE)
    if cur_name is None or volt_name is None or "time/s" not in cols:
        raise fail(path, "header", "expected time/s, a current (I/mA, <I>/mA) and a voltage "
                   f"(Ewe/V, <Ewe>/V) column; found {', '.join(names)[:200]}", fmt)
    conv = []
    t = np.asarray(cols["time/s"], dtype=np.float64)
    scale = 1.0 if cur_name.endswith("/A") else 1e-3
    current = np.asarray(cols[cur_name], dtype=np.float64) * scale
    conv.append(f"current: {cur_name!r} x{scale:g} -> A; EC-Lab's positive (oxidation at the "
                "working electrode) taken as charge")
    parsed = Parsed(fmt, t, current, np.asarray(cols[volt_name], dtype=np.float64),
                    conversions=conv)
    if "dq/mA.h" in cols or "dQ/mA.h" in cols:
        dq = np.asarray(cols.get("dq/mA.h", cols.get("dQ/mA.h")), dtype=np.float64) * 1e-3
        dq = np.where(np.isfinite(dq), dq, 0.0)
        parsed.charge_ah = Counter(np.cumsum(np.maximum(dq, 0.0)), "never")
        parsed.discharge_ah = Counter(np.cumsum(np.maximum(-dq, 0.0)), "never")
        conv.append("capacity: 'dq/mA.h' (charge moved since the previous record) x1e-3, "
                    "positive parts as charge, negative as discharge")
    for name, attr in (("Energy charge/W.h", "charge_wh"),
                       ("Energy discharge/W.h", "discharge_wh")):
        if name in cols and np.any(np.asarray(cols[name]) != 0):
            setattr(parsed, attr, Counter(np.abs(np.asarray(cols[name], dtype=np.float64)),
                                          "never"))
    if "cycle number" in cols:
        parsed.cycle = np.asarray(cols["cycle number"], dtype=np.float64).astype(np.int64) + 1
        conv.append("cycle_index = 'cycle number' + 1 (EC-Lab counts from 0)")
    if "Ns" in cols:
        parsed.step = np.asarray(cols["Ns"], dtype=np.int64)
    temp = _pick(names, ("Temperature/°C", "Temperature/�C", "T/°C"))
    if temp:
        parsed.temperature_c = np.asarray(cols[temp], dtype=np.float64)
    if "freq/Hz" in cols:
        records = _spectra(cols, t)
        if records:
            parsed.records["spectra"] = records
            conv.append("impedance rows (freq/Hz > 0) also stored as the `spectra` record "
                        "table, Z'' = -(-Im(Z)) (Im Z, negative when capacitive)")
    return parsed


def _spectra(cols: dict[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
    f = np.asarray(cols["freq/Hz"], dtype=np.float64)
    if "Re(Z)/Ohm" in cols and "-Im(Z)/Ohm" in cols:
        zr = np.asarray(cols["Re(Z)/Ohm"], dtype=np.float64)
        zi = -np.asarray(cols["-Im(Z)/Ohm"], dtype=np.float64)
    elif "|Z|/Ohm" in cols and "Phase(Z)/deg" in cols:
        mod = np.asarray(cols["|Z|/Ohm"], dtype=np.float64)
        ph = np.radians(np.asarray(cols["Phase(Z)/deg"], dtype=np.float64))
        zr, zi = mod * np.cos(ph), mod * np.sin(ph)
    else:
        return {}
    ok = (f > 0) & np.isfinite(zr) & np.isfinite(zi) & ((zr != 0) | (zi != 0))
    idx = np.flatnonzero(ok)
    if len(idx) < 3:
        return {}
    # a new spectrum where the rows stop being consecutive or the frequency goes back up
    new = np.r_[True, (np.diff(idx) > 1) | (np.diff(f[idx]) > 0)]
    parts = []
    for k, (lo, hi) in enumerate(zip(np.flatnonzero(new), np.r_[np.flatnonzero(new)[1:],
                                                                len(idx)], strict=True), 1):
        sel = idx[lo:hi]
        if len(sel) >= 3:
            parts.append(spectrum_records(f[sel], zr[sel], zi[sel], step_index=k,
                                          test_time_s=float(t[sel[0]] - t[0]),
                                          label=f"sweep {k}"))
    return concat_records(parts)
