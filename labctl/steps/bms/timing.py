"""bms_can_timing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.analysis.bms.checks import message_checks
from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep
from labctl.units import RATIO, TIME

# ------------------------------------------------------------------------------------------------
# bms_can_timing


@dataclass(frozen=True)
class TimingStep(BmsStep):
    duration_s: float = 30.0
    cycle_tolerance: float = 0.05
    jitter_s: float | None = None
    timeout_periods: float = 3.0

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        s.close_contactors(1.0)
        t0 = s.now
        batch = s.observe(self.duration_s)
        batch = batch.select(batch.time_s >= t0)
        for c in message_checks(s.smap, s.decoder, batch, cycle_tolerance=self.cycle_tolerance,
                                jitter_limit_s=self.jitter_s, timeout_periods=self.timeout_periods,
                                duration_s=self.duration_s):
            s.checks.append(c)
        return s.finish(self.text)


def compile_timing(spec: Any) -> TimingStep | None:
    if not spec.mapping(("duration", "cycle_tolerance", "jitter", "timeout_periods")):
        return None
    d = spec.quantity("duration", TIME, 30.0, positive=True)
    tol = spec.quantity("cycle_tolerance", RATIO, 0.05, positive=True)
    jit = spec.quantity("jitter", TIME, None, positive=True)
    tp = spec.quantity("timeout_periods", "number", 3.0, positive=True)
    if not spec.ok or None in (d, tol, tp):
        return None
    return TimingStep(f"bms_can_timing {d:g} s", spec.source(), ("cmd_contactor_close",),
                      "bms_can_timing", all_periods=True, duration_s=d, cycle_tolerance=tol, jitter_s=jit,
                      timeout_periods=tp)

