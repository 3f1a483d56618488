"""What is left of a step that was interrupted (pause, crash) and continues."""

from __future__ import annotations

from dataclasses import replace

from labctl.capabilities.steps import ElectricalStep, Profile, Quantity


def remaining_step(step: ElectricalStep, elapsed_s: float, moved_ah: float) -> ElectricalStep | None:
    """The rest of `step` after `elapsed_s` seconds and `moved_ah` of charge; None if nothing is left.

    Time and charge budgets shrink; voltage, current and temperature
    conditions stay as they are (they depend on the cell's state, not on history).
    """
    if elapsed_s == 0 and moved_ah == 0 and type(step.until) is tuple:
        # Nothing done yet, as for every step that did not stop: the step itself (a copy
        # by dataclasses.replace cost ~10 us per step), unless its budgets are empty.
        if step.duration_s is not None and step.duration_s <= 1e-9:
            return None
        for cond in step.until:
            if cond.quantity is Quantity.CHARGE and cond.value <= 1e-12:
                return None
        return step
    duration = step.duration_s
    if duration is not None:
        duration = duration - elapsed_s
        if duration <= 1e-9:
            return None
    until = []
    for cond in step.until:
        if cond.quantity is Quantity.CHARGE:
            left = cond.value - moved_ah
            if left <= 1e-12:
                return None
            cond = replace(cond, value=left)
        until.append(cond)
    profile = step.profile
    if profile is not None and elapsed_s > 0:
        profile = _shift_profile(profile, elapsed_s)
        if profile is None:
            return None
    return replace(step, duration_s=duration, until=tuple(until), profile=profile)


def _shift_profile(profile: Profile, elapsed_s: float) -> Profile | None:
    times, values = profile.time_s, profile.value
    if elapsed_s >= times[-1]:
        return None
    # The value in force at `elapsed_s` is the last one whose time is <= elapsed.
    k = max(i for i, t in enumerate(times) if t <= elapsed_s) if times[0] <= elapsed_s else 0
    new_times = (0.0,) + tuple(t - elapsed_s for t in times[k + 1 :])
    new_values = (values[k],) + tuple(values[k + 1 :])
    return Profile(time_s=new_times, value=new_values, name=profile.name)
