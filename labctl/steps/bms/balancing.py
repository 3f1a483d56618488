"""bms_balancing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, RATIO, TIME, VOLTAGE

# ------------------------------------------------------------------------------------------------
# bms_balancing


@dataclass(frozen=True)
class BalancingStep(BmsStep):
    imbalance_v: float = 0.05
    target_v: float = 0.01
    current_a: float = 0.1
    soc: float = 0.9
    cell: int = 1
    timeout_s: float = 4 * 3600.0
    tolerance: float = 0.05
    mode: str = "passive"
    capacity_ah: float | None = None
    efficiency: float = 0.85  # active: spec share of the energy taken that reaches the others

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        stim.set_soc(self.soc)
        stim.offset_cell_voltage(self.cell, self.imbalance_v)
        batch = s.observe(5.0)
        t, cells = s.cell_matrix(batch)
        v0 = cells[-1]
        spread0 = float(np.nanmax(v0) - np.nanmin(v0))
        s.check("balancing.initial_spread", spread0, "V", self.imbalance_v - 0.005,
                self.imbalance_v + 0.005, "imposed through the cell emulator / cell SoC")
        predicted = self._predict(s, v0)
        s.bms.command("cmd_balancing_enable", True)
        t_start = s.now
        reached = None
        energy = 0.0
        flags_seen = np.zeros(len(v0), dtype=bool)
        rows = []
        while s.now - t_start < self.timeout_s and not s.stopped:
            batch = s.observe(10.0)
            t, cells = s.cell_matrix(batch)
            if not len(t):
                continue
            spread = np.nanmax(cells, axis=1) - np.nanmin(cells, axis=1)
            hit = np.flatnonzero(spread < self.target_v)
            t_hit = t[hit[0]] if len(hit) else np.inf
            tb, flags = s.cell_matrix(batch, "balancing")
            if len(tb):
                on = (flags > 0.5) & (tb < t_hit)[:, None]  # energy up to the target only
                dt = np.diff(np.append(tb, tb[-1] + (tb[-1] - tb[-2] if len(tb) > 1 else 1.0)))
                j = np.clip(np.searchsorted(t, tb), 0, len(t) - 1)
                v = cells[j]
                if self.mode == "active":  # both ends switch; the givers are the high cells
                    on = on & (v > np.nanmedian(v, axis=1, keepdims=True))
                flags_seen |= on.any(axis=0)
                energy += float(np.nansum(on * v * self.current_a * dt[:, None]))
            rows.append({"test_time_s": float(t[-1] - s.offset), "spread_v": float(spread[-1]),
                         "balancing_cells": int((flags[-1] > 0.5).sum()) if len(tb) else 0})
            if len(hit):
                reached = float(t[hit[0]] - t_start)
                break
        s.bms.command("cmd_balancing_enable", False)
        if rows:
            run.record("bms_balancing", rows)
        s.check("balancing.time_to_target", reached, "s", None,
                None if predicted is None else predicted * (1 + self.tolerance),
                f"spread below {self.target_v * 1000:g} mV; predicted "
                + ("n/a" if predicted is None else f"{predicted:.0f} s")
                + f" at {self.current_a:g} A")
        if predicted is not None:
            s.check("balancing.predicted_time", predicted, "s", None, None,
                    "capacity x SoC difference / balancing current (cell OCV table)")
        s.check("balancing.high_cell_flag", float(flags_seen[self.cell - 1]), "", 1, 1,
                f"cell {self.cell} reported balancing")
        how = "flags of the giving cells x cell voltage x balancing current, integrated"
        if self.mode == "passive":  # the bleed resistors burn everything taken
            s.check("balancing.energy_dissipated", energy, "J", None, None, how)
            s.check("balancing.energy_moved", 0.0, "J", None, None, "passive: nothing is moved")
        else:
            s.check("balancing.energy_taken", energy, "J", None, None, how)
            s.check("balancing.energy_moved", self.efficiency * energy, "J", None, None,
                    f"taken x efficiency {self.efficiency:g} (spec)")
            s.check("balancing.energy_dissipated", (1 - self.efficiency) * energy, "J", None, None,
                    "converter losses: taken x (1 - efficiency)")
        return s.finish(self.text)

    def _predict(self, s: BmsSession, v0: np.ndarray) -> float | None:
        pack = getattr(s.bms, "pack", None)
        cell = getattr(getattr(getattr(s.bms, "cfg", None), "pack", None), "cell", None)
        if pack is None or cell is None:
            return None
        cap = self.capacity_ah or cell.capacity_ah
        low = float(np.nanmin(v0))
        v_high = float(v0[self.cell - 1])
        soc_high = float(pack.soc_for_ocv(v_high))
        if self.mode == "passive":  # only the high cell moves
            soc_end = float(pack.soc_for_ocv(low + self.target_v))
            return max(0.0, soc_high - soc_end) * cap * 3600.0 / self.current_a
        # active: the high cell gives I; each of the n-1 others gets eta I v_high / ((n-1) v_low)
        soc_low = float(pack.soc_for_ocv(low))
        rate_h = self.current_a / (3600.0 * cap)
        rate_l = self.efficiency * rate_h * v_high / ((len(v0) - 1) * low)
        lo, hi = 0.0, max(0.0, soc_high - soc_low) / rate_h
        for _ in range(60):  # bisection on the time the OCV difference reaches the target
            mid = 0.5 * (lo + hi)
            gap = float(pack.ocv(soc_high - rate_h * mid) - pack.ocv(soc_low + rate_l * mid))
            lo, hi = (mid, hi) if gap > self.target_v else (lo, mid)
        return hi


def compile_balancing(spec: Any) -> BalancingStep | None:
    keys = ("imbalance", "target", "current", "soc", "cell", "timeout", "tolerance", "mode",
            "capacity", "efficiency")
    if not spec.mapping(keys, required=("current",)):
        return None
    imb = spec.quantity("imbalance", VOLTAGE, 0.05, positive=True)
    target = spec.quantity("target", VOLTAGE, 0.01, positive=True)
    cur = spec.quantity("current", CURRENT, required=True, positive=True)
    soc = spec.quantity("soc", RATIO, 0.9, minimum=0.0, maximum=1.0)
    cell = spec.integer("cell", 1)
    timeout = spec.quantity("timeout", TIME, 4 * 3600.0, positive=True)
    tol = spec.quantity("tolerance", RATIO, 0.05, minimum=0.0)
    mode = spec.choice("mode", ("passive", "active"), "passive")
    cap = spec.quantity("capacity", "charge")
    eff = spec.quantity("efficiency", RATIO, 0.85, positive=True, maximum=1.0)
    if not spec.ok or None in (imb, target, cur, soc, timeout, tol, mode, eff):
        return None
    return BalancingStep(f"bms_balancing {imb * 1000:g} mV -> {target * 1000:g} mV", spec.source(),
                         ("cell_voltage_v", "balancing", "cmd_balancing_enable"), "bms_balancing",
                         per_cell="it judges the BMS's per-cell balancing decisions (which cell "
                                  "it bleeds, each cell's voltage as the spread closes)",
                         cells_used=(cell,), imbalance_v=imb, target_v=target, current_a=cur, soc=soc, cell=cell,
                         timeout_s=timeout, tolerance=tol, mode=mode, capacity_ah=cap,
                         efficiency=eff)

