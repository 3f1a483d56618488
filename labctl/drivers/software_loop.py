"""Software step execution for instruments without onboard steps (bare SMUs, power supplies).

`run_software_step` gives such an instrument the cycler's `run_step`: it sets the
source, polls voltage and current, integrates charge and energy (trapezoids over
every poll, not only the logged ones), ends the step on its `until` conditions,
its duration or a safety-limit crossing, and logs samples by the step's policy.

Time comes either from the instrument's own reading timestamps
(`time_source="instrument"`; the SMU's timer, also what `labctl sim serve`
advances) or from the station clock (`"clock"`). With instrument time the
station's virtual clock is moved along with the instrument, so the engine's
test time matches the samples. Polls are paced on the station clock every
`poll_period_s`; an unpaced virtual clock against an instrument-timed link polls
back to back (the instrument paces itself).

The output is switched off when the step ends, when it is abandoned (generator
closed by the engine) and on any error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from labctl.capabilities.cycler import CyclerRanges, EndKind, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits, violation_text
from labctl.capabilities.steps import ElectricalStep, EndCondition, LoggingPolicy, Mode, Quantity
from labctl.errors import InstrumentError

BATCH_SAMPLES = 200  # hand samples to the engine at least this often ...
BATCH_WALL_S = 0.2  # ... and at least every this much wall time (abort/pause react fast)
MAX_STEP_S = 30 * 86400.0
STUCK_POLLS = 1000  # instrument timestamps frozen this long: a broken or mis-set time base
_EPS = 1e-9


@dataclass(frozen=True)
class Reading:
    voltage_v: float
    current_a: float  # + = charge
    time_s: float | None = None  # the instrument's timestamp, if it gives one


class SmuLink(Protocol):
    """What the loop needs from a source-measure instrument (SI units, + = charge)."""

    def source_current(self, current_a: float, voltage_limit_v: float) -> None: ...

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None: ...

    def set_current(self, current_a: float) -> None:
        """Change the level of an already configured current source."""
        ...

    def read(self) -> Reading: ...

    def output_off(self) -> None: ...


def check_step(name: str, step: ElectricalStep, ranges: CyclerRanges) -> None:
    """Refuse what the instrument cannot do (validation should have caught it before)."""
    where = f"{name}: step {step.text or step.mode.value!r}"
    r = ranges
    if step.mode is Mode.POWER_PROFILE:
        raise InstrumentError(f"{where}: power profiles are not supported by this driver")
    if step.mode is Mode.CURRENT and abs(step.value) > r.max_current_a * (1 + 1e-9):
        raise InstrumentError(f"{where}: {abs(step.value):g} A is beyond the instrument's "
                              f"{r.max_current_a:g} A")
    if step.mode is Mode.VOLTAGE and not r.min_voltage_v <= step.value <= r.max_voltage_v:
        raise InstrumentError(f"{where}: {step.value:g} V is outside the instrument's "
                              f"{r.min_voltage_v:g}..{r.max_voltage_v:g} V")
    if step.mode is Mode.CURRENT_PROFILE:
        prof = step.profile
        if prof is None or not prof.value or max(abs(v) for v in prof.value) > r.max_current_a:
            raise InstrumentError(f"{where}: needs a profile within ±{r.max_current_a:g} A")


def _limit_hit(limits: SafetyLimits, v: float, i: float) -> str | None:
    if v > limits.max_voltage_v:
        return violation_text("voltage", v, "V", ">", limits.max_voltage_v)
    if v < limits.min_voltage_v:
        return violation_text("voltage", v, "V", "<", limits.min_voltage_v)
    if i > limits.max_charge_current_a:
        return violation_text("charge current", i, "A", ">", limits.max_charge_current_a)
    if -i > limits.max_discharge_current_a:
        return violation_text("discharge current", -i, "A", ">",
                              limits.max_discharge_current_a)
    return None


def _fires(cond: EndCondition, v: float, i: float, q_ah: float) -> bool:
    if cond.quantity is Quantity.VOLTAGE:
        x = v
    elif cond.quantity is Quantity.CURRENT:
        x = abs(i)
    elif cond.quantity is Quantity.CHARGE:
        x = q_ah
    else:  # temperature: an SMU has no thermocouple
        return False
    return x >= cond.value if cond.op == ">=" else x <= cond.value


class _Log:
    """Samples waiting to be handed to the engine."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, ...]] = []

    def add(self, *row: float) -> None:
        self.rows.append(row)

    def batch(self) -> SampleBatch:
        a = np.array(self.rows, dtype=float).reshape(-1, 7)
        self.rows = []
        return SampleBatch(step_time_s=a[:, 0], voltage_v=a[:, 1], current_a=a[:, 2],
                           temperature_c=np.full(len(a), np.nan), charge_ah=a[:, 3],
                           discharge_ah=a[:, 4], charge_wh=a[:, 5], discharge_wh=a[:, 6])


def run_software_step(link: SmuLink, clock: Any, step: ElectricalStep, limits: SafetyLimits,
                      logging: LoggingPolicy, *, ranges: CyclerRanges, name: str,
                      poll_period_s: float = 0.1, time_source: str = "instrument",
                      max_step_s: float = MAX_STEP_S) -> Generator[SampleBatch, None, StepEnd]:
    """Execute `step` on `link` by polling; yields sample batches, returns why it ended."""
    check_step(name, step, ranges)
    try:
        return (yield from _run(link, clock, step, limits, logging, ranges, poll_period_s,
                                time_source, max_step_s, name))
    finally:
        link.output_off()


def _start(link: SmuLink, step: ElectricalStep, limits: SafetyLimits, ranges: CyclerRanges
           ) -> float:
    """Set the source for the step; returns the current it asked for (for profiles/power)."""
    # The cell's own maximum voltage as the hardware compliance: a second, analogue guard.
    v_lim = min(ranges.max_voltage_v, limits.max_voltage_v)
    if step.mode is Mode.VOLTAGE:
        i_lim = ranges.max_current_a if step.current_limit_a is None else abs(step.current_limit_a)
        link.source_voltage(step.value, min(i_lim, ranges.max_current_a))
        return 0.0
    if step.mode is Mode.CURRENT:
        current = step.value
    elif step.mode is Mode.CURRENT_PROFILE:
        current = step.profile.value[0]
    else:  # rest: 0 A sourced, the voltage measured (an SMU's open circuit); power: set on 1st read
        current = 0.0
    link.source_current(current, v_lim)
    return current


def _setpoint(step: ElectricalStep, t: float, v: float, ranges: CyclerRanges) -> float | None:
    """The current to source from time t on (profiles, constant power); None = unchanged."""
    if step.mode is Mode.CURRENT_PROFILE:
        k = int(np.searchsorted(np.asarray(step.profile.time_s), t + _EPS, side="right")) - 1
        return float(step.profile.value[max(k, 0)])
    if step.mode is Mode.POWER:
        i = step.value / max(v, 0.1)  # P = V I at the last measured voltage
        limit = ranges.max_current_a if step.current_limit_a is None else step.current_limit_a
        return float(np.clip(i, -limit, limit))
    return None


def _run(link, clock, step, limits, logging, ranges, poll_period_s, time_source, max_step_s,
         name):
    origin = clock.now()
    paced = not clock.is_virtual or getattr(clock, "speed", None) is not None
    follow = time_source == "instrument" and clock.is_virtual
    current = _start(link, step, limits, ranges)
    duration = step.duration_s if step.duration_s is not None else max_step_s
    end_kind = EndKind.TIME if step.duration_s is not None else EndKind.LIMIT
    log = _Log()
    q = np.zeros(4)  # charge Ah, discharge Ah, charge Wh, discharge Wh
    t0_inst: float | None = None
    prev: tuple[float, float, float] | None = None
    last_logged: tuple[float, float, float] | None = None
    wall_yield = time.monotonic()
    t = 0.0
    stuck = 0  # polls in a row whose instrument timestamp did not move
    while True:
        r = link.read()
        if not (math.isfinite(r.voltage_v) and math.isfinite(r.current_a)):
            raise InstrumentError(f"{name}: reading is not a number (V={r.voltage_v}, "
                                  f"I={r.current_a})")
        instrument_time = time_source == "instrument" and r.time_s is not None
        if instrument_time:
            t0_inst = r.time_s if t0_inst is None else t0_inst
            stuck = stuck + 1 if prev is not None and r.time_s - t0_inst <= prev[0] else 0
            if stuck > STUCK_POLLS:
                raise InstrumentError(f"{name}: the instrument's timestamps do not advance; "
                                      "set 'time_source: clock' for this instrument")
            t = r.time_s - t0_inst
        else:
            t = clock.now() - origin
        if follow and instrument_time:
            clock.sleep_until(origin + t)
        v, i = r.voltage_v, r.current_a
        if prev is not None:
            dt_h = (t - prev[0]) / 3600.0
            dq = 0.5 * (i + prev[2]) * dt_h
            de = 0.5 * (v * i + prev[1] * prev[2]) * dt_h
            q += (max(dq, 0.0), max(-dq, 0.0), max(de, 0.0), max(-de, 0.0))
        prev = (t, v, i)
        end: StepEnd | None = None
        hit = _limit_hit(limits, v, i)
        if hit is not None:
            end = StepEnd(EndKind.SAFETY, hit)
        else:
            for k, cond in enumerate(step.until):
                if _fires(cond, v, i, q[0] + q[1]):
                    end = StepEnd(EndKind.CONDITION, f"reached {cond.describe()}", k)
                    break
        if end is None and t >= duration - _EPS:
            end = StepEnd(end_kind, "time elapsed" if step.duration_s is not None
                          else f"maximum step time reached ({max_step_s / 86400:g} days)")
        due = last_logged is None or end is not None or t - last_logged[0] >= logging.period_s - _EPS
        if not due and logging.delta_v is not None:
            due = abs(v - last_logged[1]) >= logging.delta_v
        if not due and logging.delta_i is not None:
            due = abs(i - last_logged[2]) >= logging.delta_i
        if due:
            log.add(t, v, i, *q)
            last_logged = (t, v, i)
        if end is not None:
            yield log.batch()
            return end
        if log.rows and (len(log.rows) >= BATCH_SAMPLES
                         or time.monotonic() - wall_yield >= BATCH_WALL_S):
            yield log.batch()
            wall_yield = time.monotonic()
        new = _setpoint(step, t, v, ranges)
        if new is not None and new != current:
            link.set_current(new)
            current = new
        if paced or not instrument_time:
            clock.sleep_until(origin + min(t + poll_period_s, duration))
