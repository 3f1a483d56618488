"""Batch decoding of logged frames with a per-message precompiled plan (numpy).

cantools decodes one frame at a time in Python (a few microseconds each); a BMS log
holds millions of frames. Here every message of the DBC is compiled once into a
plan (for each signal: shift, mask, sign, scale, offset), and all frames of one
message are decoded together: the 8 data bytes are viewed as one 64-bit integer
(little- or big-endian), then each signal is a shift, a mask and a multiply-add
over the whole array. Messages cantools can describe but this plan cannot
(multiplexed messages, float signals, frames longer than 8 bytes) fall back to
cantools' own decode_message, so the result is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.can.frames import FrameBatch


@dataclass(frozen=True)
class _SignalPlan:
    name: str
    shift: int
    mask: int
    signed: bool
    length: int
    scale: float
    offset: float
    big_endian: bool


@dataclass(frozen=True)
class _MessagePlan:
    name: str
    frame_id: int
    extended: bool
    signals: tuple[_SignalPlan, ...]
    fallback: bool  # decode with cantools instead


def _plan_signal(sig) -> _SignalPlan:
    if sig.byte_order == "little_endian":
        shift = sig.start
        big = False
    else:
        # cantools' start is the MSB in DBC "sawtooth" numbering; in the frame read as a
        # big-endian 64-bit integer that bit sits at (byte*8 + 7 - bit) from the left.
        msb_from_left = (sig.start // 8) * 8 + (7 - sig.start % 8)
        shift = 64 - (msb_from_left + sig.length)
        big = True
    return _SignalPlan(sig.name, shift, (1 << sig.length) - 1, bool(sig.is_signed), sig.length,
                       float(sig.scale), float(sig.offset), big)


def _plan(msg) -> _MessagePlan:
    fallback = bool(msg.is_multiplexed()) or msg.length > 8 or any(s.is_float for s in msg.signals)
    sigs = () if fallback else tuple(_plan_signal(s) for s in msg.signals)
    return _MessagePlan(msg.name, msg.frame_id, bool(msg.is_extended_frame), sigs, fallback)


class BatchDecoder:
    """Decode many frames at once; `decode(batch)` -> {message name: {signal: array, 'time_s': array}}."""

    def __init__(self, db) -> None:
        self.db = db
        self._plans = {(m.frame_id, bool(m.is_extended_frame)): _plan(m) for m in db.messages}

    def plan_for(self, frame_id: int, extended: bool) -> _MessagePlan | None:
        return self._plans.get((frame_id, extended))

    def decode(self, batch: FrameBatch, *, raw: bool = False) -> dict[str, dict[str, np.ndarray]]:
        """Physical values (or raw integers with raw=True) of every known message in `batch`."""
        out: dict[str, dict[str, np.ndarray]] = {}
        if len(batch) == 0:
            return out
        # Group by (id, extended) with one sort instead of one mask per message.
        key = batch.arbitration_id.astype(np.int64) | (batch.is_extended.astype(np.int64) << 32)
        order = np.argsort(key, kind="stable")
        keys_sorted = key[order]
        bounds = np.flatnonzero(np.diff(keys_sorted)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(order)]))
        for s, e in zip(starts, ends, strict=True):
            k = int(keys_sorted[s])
            plan = self._plans.get((k & 0xFFFFFFFF, bool(k >> 32)))
            if plan is None:
                continue
            idx = order[s:e]
            out[plan.name] = self.decode_message(plan, batch.data[idx], raw=raw)
            out[plan.name]["time_s"] = batch.time_s[idx]
        return out

    def decode_message(self, plan: _MessagePlan, data: np.ndarray, *, raw: bool = False
                       ) -> dict[str, np.ndarray]:
        """Decode the rows of `data` ((n, 8) uint8), all frames of one message."""
        if plan.fallback:
            return self._fallback(plan, data)
        data = np.ascontiguousarray(data, dtype=np.uint8)
        le = data.view("<u8").ravel()
        be = None
        cols: dict[str, np.ndarray] = {}
        for sig in plan.signals:
            if sig.big_endian:
                if be is None:
                    be = data.view(">u8").ravel().astype(np.uint64)
                word = be
            else:
                word = le
            value = (word >> np.uint64(sig.shift)) & np.uint64(sig.mask)
            value = value.astype(np.int64)
            if sig.signed:
                value = np.where(value >= (1 << (sig.length - 1)), value - (1 << sig.length), value)
            cols[sig.name] = value if raw else value * sig.scale + sig.offset
        return cols

    def _fallback(self, plan: _MessagePlan, data: np.ndarray) -> dict[str, np.ndarray]:
        msg = self.db.get_message_by_name(plan.name)
        rows = [msg.decode(bytes(r[: msg.length]), decode_choices=False, scaling=True) for r in data]
        names = [s.name for s in msg.signals]
        return {n: np.array([r.get(n, np.nan) for r in rows], dtype=float) for n in names}
