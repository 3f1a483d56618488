"""bms_current_limit: the allowed charge or discharge current the BMS reports
(`max_charge_current_a` / `max_discharge_current_a`, its power derating) against its
specified table over temperature and SoC, measured and judged like the protections.

    - bms_current_limit:
        direction: charge
        table: {temperature_c: [0, 10, 25, 45], soc: [0, 50 %, 80 %, 95 %],
                current_a: [[1, 1, 0.5, 0], [4, 4, 2, 0.5], [8, 8, 5, 1], [6, 6, 4, 1]]}
        temperatures: [0, 25, 45]     # where to measure (default: the table's temperatures)
        socs: [50 %, 80 %]            # (default: the table's SoCs between 5 % and 95 %)
        tolerance: 0.2 A              # spec +- this (default: 2 % of the table's largest value, >= 0.1 A)
        within: 1 s                   # time to follow a temperature step
        move_current: 2 A             # the current that moves the pack between SoC points
        settle: 3 s

The bench moves the pack's SoC with current (as a HIL bench would: the BMS counts it),
from the lowest SoC point up (or down, whichever is nearer first), and at each SoC sets
every cell's temperature sensor to each temperature in turn (heaters / climate box /
sensor emulation). The judged value is the limit in the last frame of the dwell; the
spec is the table interpolated bilinearly at the applied temperature and at the SoC the
BMS itself reports (the table is a function of the BMS's own SoC), so the SoC need not
be hit exactly. `<name>.response_time` is the time from the temperature step to the
first frame within tolerance of the new spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, TEMPERATURE, TIME, UnitError, parse_quantity

ROLES = {"charge": "max_charge_current_a", "discharge": "max_discharge_current_a"}


def table_value(temps: tuple[float, ...], socs: tuple[float, ...],
                current: tuple[tuple[float, ...], ...], t: float, soc: float) -> float:
    """Bilinear interpolation in a spec table (edge values outside it)."""
    rows = np.array([np.interp(soc, socs, row) for row in current])
    return float(np.interp(t, temps, rows))


@dataclass(frozen=True)
class CurrentLimitStep(BmsStep):
    direction: str = "charge"
    temps: tuple[float, ...] = ()
    socs: tuple[float, ...] = ()
    current: tuple[tuple[float, ...], ...] = ()
    at_temps: tuple[float, ...] = ()
    at_socs: tuple[float, ...] = ()
    tolerance_a: float = 0.1
    within_s: float = 1.0
    move_current_a: float = 2.0
    settle_s: float = 3.0
    timeout_s: float = 4 * 3600.0

    def spec(self, t: float, soc: float) -> float:
        return table_value(self.temps, self.socs, self.current, t, soc)

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        role = ROLES[self.direction]
        cells = s.smap.cells
        if not s.close_contactors(1.0):
            s.check(f"current_limit.{self.direction}.contactor_closed_before", 0.0, "", 1, 1,
                    "contactors did not close")
            return s.finish(self.text)
        rows = []
        soc_now = self._reported_soc(s, s.observe(1.0))
        targets = sorted(self.at_socs, reverse=soc_now is not None and
                         abs(soc_now - max(self.at_socs)) < abs(soc_now - min(self.at_socs)))
        for target in targets:
            reached = self._move_soc(s, stim, target)
            if s.stopped:
                break
            if reached is None:
                s.check(f"current_limit.{self.direction}.soc{target * 100:g}pct.reached", None, "1",
                        target - 0.05, target + 0.05, "the pack did not reach this SoC point")
                continue
            for temp in self.at_temps:
                for c in range(1, cells + 1):
                    stim.force_temperature(c, temp)
                t_on = s.now
                batch = s.observe(self.settle_s)
                t, limit = s.series(batch, role)
                soc = self._reported_soc(s, batch)
                name = f"current_limit.{self.direction}.{temp:g}degC.soc{target * 100:g}pct"
                if not len(t) or soc is None:
                    s.check(name, None, "A", 0.0, 0.0, f"no {role} / soc frame")
                    continue
                expected = self.spec(temp, soc)
                s.check(name, float(limit[-1]), "A", expected - self.tolerance_a,
                        expected + self.tolerance_a,
                        f"spec {expected:.3g} A at {temp:g} degC and the BMS's SoC {soc:.1%} "
                        f"+- {self.tolerance_a:g} A")
                ok = np.flatnonzero((t >= t_on) & (np.abs(limit - expected) <= self.tolerance_a))
                s.check(f"{name}.response_time", float(t[ok[0]] - t_on) if len(ok) else None, "s",
                        None, self.within_s, "from the temperature step to the first frame "
                        "within tolerance of the spec")
                rows.append({"test_time_s": float(t[-1] - s.offset), "direction": self.direction,
                             "temperature_c": temp, "soc_bms": soc, "limit_a": float(limit[-1]),
                             "spec_a": expected})
                if s.stopped:
                    break
            for c in range(1, cells + 1):
                stim.force_temperature(c, None)
        if rows:
            run.record("bms_current_limit", rows)
        stim.set_current(0.0)
        s.observe(1.0)
        return s.finish(self.text)

    @staticmethod
    def _reported_soc(s: BmsSession, batch: Any) -> float | None:
        _, soc = s.series(batch, "soc")
        return float(soc[-1]) if len(soc) else None

    def _move_soc(self, s: BmsSession, stim: Any, target: float) -> float | None:
        """Charge or discharge until the BMS reports `target` (its SoC, its resolution)."""
        cap = getattr(getattr(getattr(s.bms, "cfg", None), "pack", None), "cell", None)
        cap_ah = cap.capacity_ah if cap is not None else 1.0
        t_end = s.now + self.timeout_s
        soc = self._reported_soc(s, s.observe(0.5))
        if soc is None:
            return None
        sign = 1.0 if target > soc else -1.0
        while s.now < t_end and not s.stopped:
            if (target - soc) * sign <= 0:
                stim.set_current(0.0)
                s.observe(0.5)
                return soc
            # most of the way in one go, the last part in short steps (no overshoot)
            left_s = abs(target - soc) * cap_ah * 3600.0 / self.move_current_a
            stim.set_current(sign * self.move_current_a)
            got = self._reported_soc(s, s.observe(max(0.5, 0.8 * left_s), chunk_s=60.0))
            if got is None:  # the contactors opened: no current flows, no SoC change
                break
            soc = got
        stim.set_current(0.0)
        return None


def _numbers(spec: Any, key: str, raw: Any, kind: str) -> tuple[float, ...] | None:
    if not isinstance(raw, list) or not raw:
        spec.error(key, f"{key} is a non-empty list")
        return None
    out = []
    for x in raw:
        try:
            if isinstance(x, bool):
                raise UnitError("not a number")
            v = float(x) if isinstance(x, int | float) else \
                parse_quantity(str(x), kind, allow_bare=True).value
        except (UnitError, ValueError) as exc:
            spec.error(key, f"{key}: {x!r} is not a {kind} ({exc})")
            return None
        if not np.isfinite(v):
            spec.error(key, f"{key}: {x!r} is not finite")
            return None
        out.append(v)
    return tuple(out)


def compile_current_limit(spec: Any) -> CurrentLimitStep | None:
    keys = ("direction", "table", "temperatures", "socs", "tolerance", "within", "move_current",
            "settle", "timeout")
    if not spec.mapping(keys, required=("direction", "table")):
        return None
    direction = spec.choice("direction", tuple(ROLES))
    table = spec.raw("table")
    within = spec.quantity("within", TIME, 1.0, positive=True)
    move = spec.quantity("move_current", CURRENT, 2.0, positive=True)
    settle = spec.quantity("settle", TIME, 3.0, positive=True)
    timeout = spec.quantity("timeout", TIME, 4 * 3600.0, positive=True)
    if direction is None or None in (within, move, settle, timeout):
        return None
    if not isinstance(table, dict) or set(table) != {"temperature_c", "soc", "current_a"}:
        spec.error("table", "table is {temperature_c: [...], soc: [...], current_a: [[row per "
                            "temperature, one value per SoC], ...]} (the BMS's specified limits)")
        return None
    temps = _numbers(spec, "table", table["temperature_c"], TEMPERATURE)
    socs = _numbers(spec, "table", table["soc"], "ratio")
    rows = table["current_a"]
    if temps is None or socs is None:
        return None
    if (not isinstance(rows, list) or len(rows) != len(temps)
            or any(not isinstance(r, list) or len(r) != len(socs) for r in rows)):
        spec.error("table", f"current_a needs {len(temps)} rows (one per temperature) of "
                            f"{len(socs)} values (one per SoC)")
        return None
    current = []
    for r in rows:
        got = _numbers(spec, "table", r, CURRENT)
        if got is None:
            return None
        current.append(got)
    if any(b <= a for a, b in zip(temps, temps[1:], strict=False)) or \
            any(b <= a for a, b in zip(socs, socs[1:], strict=False)):
        spec.error("table", "the table's temperature_c and soc must be increasing")
        return None
    if not all(0.0 <= x <= 1.0 for x in socs):
        spec.error("table", "the table's soc values are fractions 0..1 (or 0..100 %)")
        return None
    at_t = _numbers(spec, "temperatures", spec.raw("temperatures"), TEMPERATURE) \
        if spec.raw("temperatures") is not None else temps
    at_s = _numbers(spec, "socs", spec.raw("socs"), "ratio") if spec.raw("socs") is not None \
        else tuple(x for x in socs if 0.05 <= x <= 0.95)
    if at_t is None or at_s is None:
        return None
    if not at_s or not all(0.0 < x < 1.0 for x in at_s):
        spec.error("socs", "measure at SoCs strictly between 0 and 100 % (the protections trip "
                           "at the ends)")
        return None
    biggest = max(max(r) for r in current)
    tol = spec.quantity("tolerance", CURRENT, max(0.1, 0.02 * biggest), minimum=0.0)
    if tol is None or not spec.ok:
        return None
    role = ROLES[direction]
    return CurrentLimitStep(
        f"bms_current_limit {direction} {len(at_t)} temperatures x {len(at_s)} SoCs",
        spec.source(), (role, "soc", "contactor_closed", "cmd_contactor_close", "pack_current_a"),
        "bms_current_limit", period_roles=(role,), direction=direction, temps=temps, socs=socs,
        current=tuple(current), at_temps=at_t, at_socs=tuple(sorted(at_s)), tolerance_a=tol,
        within_s=within, move_current_a=move, settle_s=settle, timeout_s=timeout)



