"""bms_measurement: what the BMS reports (pack voltage, current, power, cell voltages and
temperatures) against the bench's reference instruments, at several pack currents.

    - bms_measurement:
        currents: [0 A, 5 A, -10 A, -20 A]   # pack current levels (+ = charge), each held
        settle: 2 s                          # after each change, before judging
        dwell: 10 s                          # judged: every frame of the dwell
        tolerance: {cell_voltage: 5 mV, pack_voltage: 0.5 % + 50 mV,
                    pack_current: 1 % + 0.1 A, pack_power: 1.5 % + 5 W, temperature: 2 °C}

Every value the signal map carries is judged: each frame's reading against the
reference at the frame's time (the bench reads its references every half second
and interpolates between; the current is constant over a dwell). Pack values are
judged per current level, with the tolerance `rel x |reference| + abs`, as datasheets
of current sensors and BMS front ends state it; cell voltages and temperatures per
cell (or, on a pack-level map, the reported min/max against the min/max of the
references). Over two or more levels, the current sensor's gain error and offset
(least squares of reported vs reference) are reported too: they are what a
calibration would correct.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.can.frames import FrameBatch
from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, POWER, TEMPERATURE, TIME, VOLTAGE, UnitError, parse_quantity

REFERENCE_PERIOD_S = 0.5  # how often the bench reads its reference instruments

# tolerance key -> (kind of its absolute part, default (relative, absolute))
TOLERANCES: dict[str, tuple[str, tuple[float, float]]] = {
    "cell_voltage": (VOLTAGE, (0.0, 0.005)),
    "pack_voltage": (VOLTAGE, (0.005, 0.05)),
    "pack_current": (CURRENT, (0.01, 0.1)),
    "pack_power": (POWER, (0.015, 5.0)),
    "temperature": (TEMPERATURE, (0.0, 2.0)),
}
# pack-level role -> (tolerance key, unit, reference key)
PACK_ROLES = {
    "pack_voltage_v": ("pack_voltage", "V", "pack_voltage_v"),
    "pack_current_a": ("pack_current", "A", "pack_current_a"),
    "pack_power_w": ("pack_power", "W", "pack_power_w"),
}
# extreme role -> (tolerance key, unit, reference per-cell key, numpy reduction)
EXTREME_ROLES = {
    "min_cell_voltage_v": ("cell_voltage", "V", "cell_voltage_v", np.min),
    "max_cell_voltage_v": ("cell_voltage", "V", "cell_voltage_v", np.max),
    "min_cell_temperature_c": ("temperature", "°C", "cell_temperature_c", np.min),
    "max_cell_temperature_c": ("temperature", "°C", "cell_temperature_c", np.max),
}
PER_CELL = {"cell_voltage_v": ("cell_voltage", "V"), "cell_temperature_c": ("temperature", "°C")}
MEASURED = tuple(PACK_ROLES) + tuple(EXTREME_ROLES) + tuple(PER_CELL)


@dataclass(frozen=True)
class MeasurementStep(BmsStep):
    currents_a: tuple[float, ...] = (0.0,)
    settle_s: float = 2.0
    dwell_s: float = 10.0
    tolerance: tuple[tuple[str, float, float], ...] = ()  # (key, relative, absolute)

    def allowed(self, key: str, reference: float) -> float:
        given = {k: (rel, absolute) for k, rel, absolute in self.tolerance}
        rel, absolute = given.get(key, TOLERANCES[key][1])
        return rel * abs(reference) + absolute

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        stim.set_current(0.0)
        if not s.close_contactors(1.0):
            s.check("measurement.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        pairs: dict[str, list[tuple[float, float]]] = {}  # pack role -> (reference, reported)
        for level in self.currents_a:
            stim.set_current(level)
            s.observe(self.settle_s)
            batch, times, refs = self._dwell(s, stim)
            if s.stopped:
                break
            self._judge_level(s, level, batch, times, refs, pairs)
        stim.set_current(0.0)
        self._current_calibration(s, pairs.get("pack_current_a", []))
        return s.finish(self.text)

    def _dwell(self, s: BmsSession, stim: Any) -> tuple[FrameBatch, np.ndarray, dict]:
        """Frames of the dwell, and the references read every REFERENCE_PERIOD_S."""
        times, readings, batches = [s.now], [stim.reference()], []
        left = self.dwell_s
        while left > 1e-9 and not s.stopped:
            d = min(REFERENCE_PERIOD_S, left)
            batches.append(s.observe(d, chunk_s=d))
            times.append(s.now)
            readings.append(stim.reference())
            left -= d
        refs = {k: np.array([r[k] for r in readings], dtype=float) for k in readings[0]}
        return FrameBatch.concat(batches), np.array(times), refs

    def _judge_level(self, s: BmsSession, level: float, batch: FrameBatch, times: np.ndarray,
                     refs: dict, pairs: dict) -> None:
        at = f"at {level:+g} A"
        tag = f"{level:+g}A"
        for role, (key, unit, ref_key) in PACK_ROLES.items():
            if not s.smap.has(role):
                continue
            t, v = s.series(batch, role)
            ref = np.interp(t, times, refs[ref_key]) if len(t) else np.zeros(0)
            worst = float(np.max(np.abs(v - ref))) if len(t) else None
            mean_ref = float(np.mean(ref)) if len(t) else float(np.mean(refs[ref_key]))
            s.check(f"measurement.{role}.{tag}", worst, unit, None, self.allowed(key, mean_ref),
                    f"largest |reported - reference| over {len(t)} frames {at} (reference "
                    f"{mean_ref:.4g} {unit})")
            if len(t):
                pairs.setdefault(role, []).append((mean_ref, float(np.mean(v))))
        for role, (key, unit, ref_key, reduce) in EXTREME_ROLES.items():
            if not s.smap.has(role):
                continue
            t, v = s.series(batch, role)
            extreme = reduce(refs[ref_key], axis=1)
            ref = np.interp(t, times, extreme) if len(t) else np.zeros(0)
            worst = float(np.max(np.abs(v - ref))) if len(t) else None
            s.check(f"measurement.{role}.{tag}", worst, unit, None, self.allowed(key, 0.0),
                    f"largest |reported - reference| over {len(t)} frames {at}")
        for role, (key, unit) in PER_CELL.items():
            if not s.smap.refs(role) or role not in s.smap.per_cell:
                continue
            for i in range(len(s.smap.refs(role))):
                t, v = s.series(batch, role, i)
                ref = np.interp(t, times, refs[role][:, i]) if len(t) else np.zeros(0)
                worst = float(np.max(np.abs(v - ref))) if len(t) else None
                s.check(f"measurement.{role}.{i + 1:02d}.{tag}", worst, unit, None,
                        self.allowed(key, 0.0), f"cell {i + 1}: largest |reported - reference| "
                        f"over {len(t)} frames {at}")

    def _current_calibration(self, s: BmsSession, pairs: list[tuple[float, float]]) -> None:
        """Gain error and offset of the BMS's current sensor, from the levels' means."""
        refs = np.array([p[0] for p in pairs])
        if len(pairs) < 2 or np.ptp(refs) <= 0:
            return
        gain, offset = np.polyfit(refs, np.array([p[1] for p in pairs]), 1)
        s.check("measurement.pack_current_a.gain_error", float(gain - 1.0), "1", None, None,
                "reported = (1 + gain error) x reference + offset, least squares over the levels")
        s.check("measurement.pack_current_a.offset", float(offset), "A", None, None,
                "the current the BMS reports at zero reference current")


_PERCENT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*%\s*$")


def parse_tolerance(text: Any, kind: str) -> tuple[float, float]:
    """'0.5 % + 50 mV' -> (0.005, 0.05); '5 mV' -> (0, 0.005); '1 %' -> (0.01, 0). ValueError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return 0.0, float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a tolerance is text like '5 mV', '1 %' or '0.5 % + 0.1 A'")
    rel = absolute = 0.0
    for part in text.split("+"):
        if not part.strip():
            raise ValueError(f"empty part in {text!r}")
        m = _PERCENT.match(part)
        if m:
            rel += float(m.group(1)) / 100.0
            continue
        try:
            absolute += parse_quantity(part.strip(), kind, allow_bare=True).value
        except UnitError as exc:
            raise ValueError(f"{part.strip()!r}: {exc.reason}") from None
    if not (math.isfinite(rel) and math.isfinite(absolute)) or rel < 0 or absolute < 0 or \
            rel + absolute <= 0:
        raise ValueError(f"{text!r}: a tolerance is positive and finite")
    return rel, absolute


def compile_measurement(spec: Any) -> MeasurementStep | None:
    if not spec.mapping(("currents", "settle", "dwell", "tolerance"), required=("currents",)):
        return None
    settle = spec.quantity("settle", TIME, 2.0, minimum=0.0)
    dwell = spec.quantity("dwell", TIME, 10.0, positive=True)
    raw = spec.raw("currents")
    currents: list[float] = []
    if not isinstance(raw, list) or not raw:
        spec.error("currents", "currents is a list of pack currents, e.g. [0 A, 5 A, -10 A] "
                               "(+ = charge)")
    else:
        for i, x in enumerate(raw):
            text = spec.text_at(("currents", i), x, f"currents[{i}]")
            if text is None:
                continue
            try:
                currents.append(parse_quantity(text, CURRENT, allow_bare=True).value)
            except UnitError as exc:
                spec.error("currents", f"currents[{i}]: {exc.reason}")
    tolerance: dict[str, tuple[float, float]] = {}
    tol = spec.raw("tolerance", {})
    if not isinstance(tol, dict):
        spec.error("tolerance", f"tolerance is a mapping; keys: {', '.join(TOLERANCES)}")
        tol = {}
    for key, value in tol.items():
        if key not in TOLERANCES:
            spec.error("tolerance", f"unknown tolerance {key!r}; allowed: {', '.join(TOLERANCES)}")
            continue
        text = spec.text_at(("tolerance", key), value, f"tolerance.{key}")
        if text is None:
            continue
        try:
            tolerance[key] = parse_tolerance(text, TOLERANCES[key][0])
        except ValueError as exc:
            spec.error("tolerance", f"tolerance.{key}: {exc}")
    if not spec.ok or dwell is None or settle is None:
        return None
    shown = ", ".join(f"{c:+g} A" for c in currents)
    return MeasurementStep(f"bms_measurement at {shown}", spec.source(),
                           ("cmd_contactor_close", "contactor_closed", MEASURED), "bms_measurement",
                           currents_a=tuple(currents), settle_s=settle, dwell_s=dwell,
                           tolerance=tuple((k, *v) for k, v in tolerance.items()))
