"""What a simulated cycler channel refuses by itself, shared by every simulated channel.

Validation should already have refused such a step; a channel checks again because a
Python procedure or a plugin may hand it anything, as a real cycler's firmware would.
"""

from __future__ import annotations

from labctl.capabilities.cycler import CyclerRanges
from labctl.capabilities.steps import ElectricalStep, Mode
from labctl.errors import InstrumentError


def current_limit_a(step: ElectricalStep, ranges: CyclerRanges) -> float:
    """The current a CV or CP step may draw: its own limit, never beyond the channel's."""
    limit = step.current_limit_a if step.current_limit_a is not None else ranges.max_current_a
    return min(abs(float(limit)), ranges.max_current_a)


def refuse_impossible_step(step: ElectricalStep, ranges: CyclerRanges, name: str) -> None:
    """InstrumentError for a step the channel cannot do."""
    r = ranges
    where = f"{name}: step {step.text or step.mode.value!r}"
    if step.duration_s is not None and not (step.duration_s >= 0):
        raise InstrumentError(f"{where}: duration must be >= 0 s, got {step.duration_s}")
    if step.mode is Mode.CURRENT and abs(step.value) > r.max_current_a * (1 + 1e-9):
        raise InstrumentError(f"{where}: {abs(step.value):g} A is beyond the channel's "
                              f"{r.max_current_a:g} A")
    if step.mode is Mode.VOLTAGE and not r.min_voltage_v <= step.value <= r.max_voltage_v:
        raise InstrumentError(f"{where}: {step.value:g} V is outside the channel's "
                              f"{r.min_voltage_v:g}..{r.max_voltage_v:g} V")
    if step.mode is Mode.POWER and r.max_power_w and abs(step.value) > r.max_power_w:
        raise InstrumentError(f"{where}: {abs(step.value):g} W is beyond the channel's "
                              f"{r.max_power_w:g} W")
    if step.mode in (Mode.CURRENT_PROFILE, Mode.POWER_PROFILE):
        prof = step.profile
        if prof is None or len(prof.time_s) == 0 or len(prof.time_s) != len(prof.value):
            raise InstrumentError(f"{where}: needs a profile with as many times as values")
        if any(b <= a for a, b in zip(prof.time_s, prof.time_s[1:], strict=False)):
            raise InstrumentError(f"{where}: profile times must increase")
        if step.mode is Mode.CURRENT_PROFILE and max(abs(v) for v in prof.value) > r.max_current_a:
            raise InstrumentError(f"{where}: profile current beyond the channel's "
                                  f"{r.max_current_a:g} A")
