"""bms_soc."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.can.frames import FrameBatch
from labctl.capabilities.cycler import StepEnd
from labctl.errors import LabctlError
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import RATIO, TIME

# ------------------------------------------------------------------------------------------------
# bms_soc


@dataclass(frozen=True)
class SocStep(BmsStep):
    initial_soc: float = 0.8
    time_s: tuple[float, ...] = ()
    current_a: tuple[float, ...] = ()
    repeat: int = 1
    max_error: float = 0.05
    capacity_ah: float | None = None
    rest_s: float = 0.0
    settle_s: float = 0.0  # the RMSE is taken after this much of the profile (a filter converging)
    max_rmse: float | None = None

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        stim.set_soc(self.initial_soc)
        stim.set_current(0.0)
        if not s.close_contactors(2.0):
            s.check("soc.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        if self.rest_s:  # the BMS re-learns its SoC from the OCV after a long enough rest
            s.observe(self.rest_s, chunk_s=30.0)
        cell = getattr(getattr(getattr(s.bms, "cfg", None), "pack", None), "cell", None)
        cap = self.capacity_ah or (cell.capacity_ah if cell is not None else None)
        if cap is None:
            raise LabctlError("bms_soc needs 'capacity' (the pack's cell capacity)")
        # Reference: the bench's reference meter (the charge that really flowed; none while
        # the contactors are open), counted from the known start.
        q0 = stim.reference_charge_ah()
        ref_t = [s.now]
        ref_soc = [self.initial_soc]
        batches = []
        durations = np.diff(np.append(self.time_s, self.time_s[-1] + (self.time_s[-1] - self.time_s[-2]
                                                                        if len(self.time_s) > 1 else 1.0)))
        for _ in range(self.repeat):
            for current, duration in zip(self.current_a, durations, strict=True):
                stim.set_current(current)
                batches.append(s.observe(float(duration), chunk_s=float(duration)))
                ref_t.append(s.now)
                ref_soc.append(self.initial_soc + (stim.reference_charge_ah() - q0) / cap)
                if s.stopped:
                    break
        stim.set_current(0.0)
        batch = FrameBatch.concat(batches)
        t, soc = s.series(batch, "soc")
        ref = np.interp(t, ref_t, ref_soc)
        err = soc - ref
        rows = {"test_time_s": t - s.offset, "soc_bms": soc, "soc_reference": ref}
        run.record("bms_soc", rows)
        s.check("soc.max_error", float(np.max(np.abs(err))) if len(err) else None, "1", None,
                self.max_error, "BMS SoC vs the reference Coulomb count over the profile")
        s.check("soc.final_error", float(abs(err[-1])) if len(err) else None, "1", None,
                self.max_error, "at the end of the profile")
        after = (t - ref_t[0]) >= self.settle_s
        s.check("soc.rmse_after_settle", float(np.sqrt(np.mean(err[after] ** 2))) if after.any()
                else None, "1", None, self.max_rmse,
                f"RMS error from {self.settle_s:g} s into the profile to its end")
        s.check("soc.charge_throughput", float(np.sum(np.abs(self.current_a) * durations)
                                               * self.repeat / 3600.0), "Ah", None, None, "")
        return s.finish(self.text)


def compile_soc(spec: Any) -> SocStep | None:
    if not spec.mapping(("initial_soc", "profile", "repeat", "max_error", "capacity", "rest",
                         "settle", "max_rmse"), required=("profile",)):
        return None
    soc0 = spec.quantity("initial_soc", RATIO, 0.8, minimum=0.0, maximum=1.0)
    repeat = spec.integer("repeat", 1)
    max_err = spec.quantity("max_error", RATIO, 0.05, positive=True)
    cap = spec.quantity("capacity", "charge")
    rest = spec.quantity("rest", TIME, 0.0, minimum=0.0)
    settle = spec.quantity("settle", TIME, 0.0, minimum=0.0)
    max_rmse = spec.quantity("max_rmse", RATIO, None, positive=True)
    prof = spec.raw("profile")
    times = currents = None
    if (not isinstance(prof, dict) or set(prof) != {"time", "current"}
            or not all(isinstance(prof[k], list) for k in prof)):
        spec.error("profile", "profile is {time: [s, ...], current: [A, ...]} (+ = charge)")
    else:
        try:
            times = tuple(float(x) for x in prof["time"])
            currents = tuple(float(x) for x in prof["current"])
        except (TypeError, ValueError):
            spec.error("profile", "profile times and currents must be numbers (s, A)")
        if times is not None and (len(times) != len(currents or ()) or len(times) < 1
                                  or any(b <= a for a, b in zip(times, times[1:], strict=False))):
            spec.error("profile", "profile needs as many currents as times, times increasing")
    if not spec.ok or times is None or currents is None:
        return None
    return SocStep(f"bms_soc {len(times)}-point profile x{repeat}", spec.source(),
                   ("soc", "cmd_contactor_close", "contactor_closed"), "bms_soc",
                   initial_soc=soc0, time_s=times, current_a=currents, repeat=repeat,
                   max_error=max_err, capacity_ah=cap, rest_s=rest, settle_s=settle or 0.0,
                   max_rmse=max_rmse)

