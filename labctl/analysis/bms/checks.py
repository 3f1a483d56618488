"""Checks as measurements with limits (OpenHTF style) and the CAN-level checks on frames.

Every check is a row: name, value, unit, low, high, verdict (pass | fail | info), detail.
A value outside [low, high] fails; a missing value (the BMS never did the thing)
fails; a row without limits is information only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labctl.can.checksum import checksums, counter_gaps
from labctl.can.decode import BatchDecoder
from labctl.can.frames import FrameBatch

TABLE = "bms_checks"


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.low is None and self.high is None:
            return "info"
        if self.value is None or not math.isfinite(self.value):
            return "fail"
        if self.low is not None and self.value < self.low - 1e-12:
            return "fail"
        if self.high is not None and self.value > self.high + 1e-12:
            return "fail"
        return "pass"

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict
        return d


def message_checks(smap: Any, decoder: BatchDecoder, batch: FrameBatch, *,
                   cycle_tolerance: float = 0.05, jitter_limit_s: float | None = None,
                   timeout_periods: float = 3.0, duration_s: float | None = None) -> list[Check]:
    """Cycle time, jitter, gaps (timeouts), counters and checksums of each message the BMS sends."""
    out: list[Check] = []
    decoded = decoder.decode(batch, raw=True)
    for name in smap.device_messages():
        period = smap.period_s(name)
        msg = smap.message(name)
        cols = decoded.get(name)
        if cols is None or len(cols["time_s"]) < 2:
            out.append(Check(f"{name}.frames", 0 if cols is None else len(cols["time_s"]), "frames",
                             2, None, "the message was (almost) never received"))
            continue
        t = np.sort(cols["time_s"])
        dt = np.diff(t)
        if period:
            out.append(Check(f"{name}.cycle_time", float(np.median(dt)), "s",
                             period * (1 - cycle_tolerance), period * (1 + cycle_tolerance),
                             f"{smap.period_source(name)} {period * 1000:g} ms"))
            jl = jitter_limit_s if jitter_limit_s is not None else 0.1 * period
            out.append(Check(f"{name}.jitter", float(np.max(np.abs(dt - period))), "s", None, jl,
                             "largest deviation of an interval from the cycle time"))
            out.append(Check(f"{name}.max_gap", float(dt.max()), "s", None, timeout_periods * period,
                             f"a gap above {timeout_periods:g} cycles is a timeout"))
            if duration_s:
                expected = duration_s / period
                out.append(Check(f"{name}.frames", float(len(t)), "frames", math.floor(expected * 0.97),
                                 math.ceil(expected * 1.03) + 1, f"{expected:.0f} expected"))
        else:  # said, not skipped silently (validation refuses bms_can_timing without it)
            out.append(Check(f"{name}.cycle_time", float(np.median(dt)), "s", None, None,
                             "no cycle time (no GenMsgCycleTime in the DBC, no cycle_times entry "
                             "in the station file): cycle time, jitter and gaps NOT judged"))
        cname = smap.counters.get(name)
        if cname is not None:
            order = np.argsort(cols["time_s"], kind="stable")
            bits = msg.get_signal_by_name(cname).length
            gaps = counter_gaps(cols[cname][order], bits)
            out.append(Check(f"{name}.counter_errors", float(np.count_nonzero(gaps)), "frames", 0, 0,
                             f"{int(gaps.sum())} counts skipped"))
        index = smap.checksum_byte(name)
        if index is not None:
            sel = (batch.arbitration_id == msg.frame_id) & (batch.is_extended == bool(msg.is_extended_frame))
            data = batch.data[sel]
            spec = smap.checksum_spec(name)
            bad = checksums(spec, data, index, msg.frame_id) != data[:, index]
            out.append(Check(f"{name}.checksum_errors", float(np.count_nonzero(bad)), "frames", 0, 0,
                             spec.label()))
    return out
