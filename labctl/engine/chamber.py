"""Chamber steps: set a temperature, then wait until the cell (or the air) is stable.

While waiting, the cycler rests the cell and keeps logging, so the data show
the cell following the chamber. Stability is judged every poll interval.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.steps import ChamberStep, ElectricalStep, Mode
from labctl.engine.accounting import StepAccounting
from labctl.errors import LabctlError
from labctl.store.step_summary import StepAccumulator

if TYPE_CHECKING:
    from labctl.engine.runner import Engine


def poll_interval_s(step: ChamberStep) -> float:
    """Judge stability often enough to resolve `stable_for`, but not needlessly often."""
    return min(60.0, max(step.logging.period_s, step.stable_for_s / 10.0, 1.0))


def _claim(engine: Engine, step: ChamberStep) -> str | None:
    """Claim the (possibly shared) chamber at the step's set-point; None when granted."""
    from labctl.engine.sharing import channel_of, shared_chamber

    spec = engine.station.spec
    me = channel_of(spec)

    def on_wait(other: str, setpoint_c: float) -> None:
        engine.make_safe(f"waiting for channel {other} to release the chamber "
                         f"(held at {setpoint_c:g} °C)")

    started = time.monotonic()
    refused = shared_chamber(spec).claim(
        me, step.setpoint_c, wait=step.if_busy == "wait", timeout_s=step.timeout_s,
        should_stop=lambda: bool(engine.control.abort_reason), on_wait=on_wait)
    waited = time.monotonic() - started
    if refused is None and waited > 0.2:
        engine.log("info", f"chamber released by the other channels after {waited:.1f} s (wall)")
        if hasattr(engine.clock, "reset_pacing"):
            engine.clock.reset_pacing()
    return refused


def run_chamber_step(engine: Engine, step: ChamberStep, index: int, acc: StepAccumulator) -> StepEnd:
    chamber = engine.station.get("chamber")
    if chamber is None:
        raise LabctlError(f"step {step.text!r} needs a chamber, and the station has none")
    refused = _claim(engine, step)
    if refused is not None:
        return StepEnd(EndKind.ABORTED, f"chamber step rejected: {refused}")
    chamber.set_temperature(step.setpoint_c, step.ramp_c_per_min)
    engine.log("info", f"chamber set-point {step.setpoint_c:g} °C")
    if not step.wait:
        return StepEnd(EndKind.CONDITION, f"set-point {step.setpoint_c:g} °C (not waiting)")
    cycler = engine.station.get("cycler")
    watch_cell = step.stabilise_on == "cell" and cycler is not None
    poll = poll_interval_s(step)
    start = engine.test_time()
    stable_since: float | None = None
    first = True
    while True:
        now = engine.test_time()
        if now - start >= step.timeout_s:
            return StepEnd(
                EndKind.FAULT,
                f"chamber did not stabilise at {step.setpoint_c:g} °C within {step.timeout_s:g} s",
            )
        temperature = None
        if cycler is not None:
            rest = ElectricalStep(Mode.REST, duration_s=poll, logging=step.logging, text=step.text)
            accounting = StepAccounting(engine.counter, index, engine.test_time(), engine.unix_origin_s)
            end = engine.stream(
                cycler.run_step(rest, engine.proc.safety, step.logging),
                accounting,
                acc,
                index,
                drop_first=not first,
            )
            first = False
            if not isinstance(end, StepEnd):  # paused or reconnected: keep stabilising
                stop = engine.after_interruption(end)
                if stop is not None:
                    return stop
                cycler = engine.station.get("cycler")
                continue
            if end.kind is not EndKind.TIME:
                return end
            if watch_cell:
                temperature = engine._live.get("temperature_c")
        else:
            engine.clock.sleep_until(engine.clock.now() + poll)
        if temperature is None:
            temperature = chamber.temperature_c()
        if abs(temperature - step.setpoint_c) <= step.tolerance_c:
            if stable_since is None:
                stable_since = engine.test_time()
            if engine.test_time() - stable_since >= step.stable_for_s:
                where = "cell" if watch_cell else "chamber"
                return StepEnd(
                    EndKind.CONDITION,
                    f"{where} stable at {temperature:.2f} °C (set-point {step.setpoint_c:g} °C)",
                )
        else:
            stable_since = None
