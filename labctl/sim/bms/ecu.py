"""What the BMS firmware decides every tick: protections, diagnostics, contactors, balancing, SoC.

Protections: a condition (value >= threshold for "over", <= for "under") must hold
for `delay` before the fault is set; the fault clears once the value has been past
`recovery` for `recovery_delay`. Any fault opens the contactors at the tick it is
set. They close only while labctl requests it (cmd_contactor_close), no fault is
active and the command message keeps arriving (command timeout).

Diagnostics: an open sense wire (a reading below `open_wire_v`) or cell readings
that do not add up to the pack voltage (a stuck or drifting sensor) set
fault_sensor after `sensor.delay`; a slave node none of whose frames has arrived
for more than `slave_timeout_s` (a dead slave) sets fault_comm, as does a missing
command message.

Current limits: the allowed charge and discharge currents from the configured tables
over temperature and SoC (see `current_limits`); 0 while any fault is set.

SoC (`soc_method`): `coulomb_ocv` counts the measured current and resets to the OCV
SoC after a long rest; `ekf` runs labctl.analysis.soc's extended Kalman filter per
cell every `soc.period_s` on the cell readings (R0 + first RC pair of the cell file)
and reports the mean of the cells.

The tick logic works on scalars (max/min cell voltage...) computed for a whole
chunk of ticks at once by the simulator, so it costs microseconds per tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.sim.bms.config import BmsConfig, ProtectionConfig

FAULT_ROLES = ("fault_over_voltage", "fault_under_voltage", "fault_over_current_charge",
               "fault_over_current_discharge", "fault_over_temperature", "fault_under_temperature",
               "fault_pressure", "fault_sensor", "fault_comm", "fault_over_current")
_EPS = 1e-9


@dataclass
class ProtectionState:
    cfg: ProtectionConfig
    active: bool = False
    since: float | None = None
    clear_since: float | None = None
    tripped_at: float | None = None

    def update(self, t: float, value: float) -> None:
        c = self.cfg
        over = c.direction == "over"
        if not self.active:
            if not (value >= c.threshold - _EPS if over else value <= c.threshold + _EPS):
                self.since = None
                return
            if self.since is None:
                self.since = t
            if t - self.since >= c.delay_s - _EPS:
                self.active, self.tripped_at, self.clear_since = True, t, None
        else:
            if not (value <= c.recovery if over else value >= c.recovery):
                self.clear_since = None
                return
            if self.clear_since is None:
                self.clear_since = t
            if t - self.clear_since >= c.recovery_delay_s - _EPS:
                self.active, self.since = False, None


class Debounce:
    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.since: float | None = None

    def update(self, t: float, cond: bool) -> bool:
        if not cond:
            self.since = None
            return False
        if self.since is None:
            self.since = t
        return t - self.since >= self.delay_s - _EPS


class BmsEcu:
    def __init__(self, cfg: BmsConfig, capacity_ah: float):
        self.cfg = cfg
        self.capacity_ah = capacity_ah
        self.protections = [ProtectionState(p) for p in cfg.protections]
        self.faults: dict[str, bool] = dict.fromkeys(FAULT_ROLES, False)
        self.contactor_closed = False
        self.cmd_contactor_close = False
        self.cmd_balancing_enable = False
        self.last_command_s: float | None = None
        self.balancing = np.zeros(cfg.cells, dtype=bool)
        self._donors = np.zeros(cfg.cells, dtype=bool)  # active: the cells giving charge
        self.next_balance_s = 0.0
        self._sensor = Debounce(cfg.sensor.delay_s)
        self._sensor_clear: float | None = None
        self.soc_est: float | None = None
        self._rest_since: float | None = None
        self.node_seen: dict[str, float] = {}  # slave node -> time of its last frame
        self._ekf = None
        self._ekf_t: float | None = None
        self._ekf_q = 0.0  # ampere-seconds measured since the filter last ran

    def command(self, t: float, contactor_close: bool | None, balancing_enable: bool | None) -> None:
        if contactor_close is not None:
            self.cmd_contactor_close = bool(contactor_close)
        if balancing_enable is not None:
            self.cmd_balancing_enable = bool(balancing_enable)
        self.last_command_s = t

    def tick(self, t: float, dt: float, v: dict[str, float], current_a: float,
             pressure_mpa: float | None, soc_ocv: float, judge: bool,
             cells: np.ndarray | None = None) -> None:
        """One tick with this tick's scalars: vmax, vmin, tmax, tmin, open_wire, mismatch_v
        (`cells`: the readings the master has, for the EKF)."""
        cfg = self.cfg
        if judge:
            sensor = v["open_wire"] > 0 or v["mismatch_v"] > cfg.sensor.plausibility_v
            # held for recovery_delay: opening the contactors removes the load that showed a
            # stuck sensor, which must not close them again at once
            if self._sensor.update(t, sensor):
                self.faults["fault_sensor"], self._sensor_clear = True, None
            elif self.faults["fault_sensor"] and not sensor:
                if self._sensor_clear is None:
                    self._sensor_clear = t
                if t - self._sensor_clear >= cfg.sensor.recovery_delay_s - _EPS:
                    self.faults["fault_sensor"] = False
            values = {"over_voltage": v["vmax"], "under_voltage": v["vmin"],
                      "over_current_charge": current_a, "over_current_discharge": -current_a,
                      "over_temperature": v["tmax"], "under_temperature": v["tmin"],
                      "over_pressure": pressure_mpa if pressure_mpa is not None else 0.0,
                      "under_pressure": pressure_mpa if pressure_mpa is not None else 1e9}
            for p in self.protections:
                p.update(t, values[p.cfg.name])
            for role in FAULT_ROLES[:7]:
                self.faults[role] = any(p.active for p in self.protections
                                        if p.cfg.fault_role == role)
            # the one flag of a BMS that does not say which direction tripped
            self.faults["fault_over_current"] = (self.faults["fault_over_current_charge"]
                                                 or self.faults["fault_over_current_discharge"])
        stale = any(t - seen > cfg.slave_timeout_s + _EPS for seen in self.node_seen.values())
        cmd_lost = self.last_command_s is None or t - self.last_command_s > cfg.command_timeout_s
        self.faults["fault_comm"] = stale or (cmd_lost and self.last_command_s is not None)
        self.contactor_closed = (self.cmd_contactor_close and not cmd_lost
                                 and not any(self.faults.values()))
        if cfg.soc_method == "ekf":
            self._soc_ekf(t, dt, current_a, soc_ocv, judge, cells, v["open_wire"] == 0)
        else:
            self._soc(t, dt, current_a, soc_ocv, judge)

    def current_limits(self, t_min_c: float, t_max_c: float) -> tuple[float, float]:
        """Allowed (charge, discharge) current: each table at the BMS's SoC estimate and at the
        coldest and the hottest cell, the more restrictive of the two; 0 while a fault is set."""
        if self.any_fault() or self.soc_est is None:
            return 0.0, 0.0
        soc = self.soc_est
        out = []
        for table in (self.cfg.charge_limit, self.cfg.discharge_limit):
            out.append(0.0 if table is None else min(table(t_min_c, soc), table(t_max_c, soc)))
        return out[0], out[1]

    def node_frame(self, node: str, t: float) -> None:
        """A frame of slave `node` reached the master at `t`."""
        self.node_seen[node] = t

    def any_fault(self) -> bool:
        return any(self.faults.values())

    def balance(self, t: float, v: np.ndarray) -> np.ndarray:
        """Decide the balancing switches from the cell readings; returns per-cell currents."""
        b = self.cfg.balancing
        self.next_balance_s = t + b.period_s
        enabled = (b.mode != "off" and not self.any_fault()
                   and (b.enable == "always" or self.cmd_balancing_enable))
        if enabled and b.window_v is not None:
            if (b.window == "top" and v.max() < b.window_v) or \
                    (b.window == "bottom" and v.min() > b.window_v):
                enabled = False
        current = np.zeros(len(v))
        if not enabled:
            self.balancing[:] = False
            return current
        if b.mode == "passive":  # bleed the cells above the lowest
            ref = v.min()
            self.balancing = (v > ref + b.start_v) | (self.balancing & (v > ref + b.stop_v))
            current[self.balancing] = -b.current_a
            return current
        # active (cell to cells): the cells above the lowest give `current_a`; the energy taken,
        # times the converter's efficiency, goes in equal shares of power to all the others
        ref = v.min()
        was = self.balancing & (v > ref + b.stop_v) & self._donors
        high = (v > ref + b.start_v) | was
        low = ~high
        if not high.any() or not low.any():
            self.balancing[:] = False
            self._donors = high & False
            return current
        self._donors = high
        self.balancing = high | low
        current[high] = -b.current_a
        current[low] = b.efficiency * b.current_a * v[high].sum() / low.sum() / v[low]
        return current

    def _soc(self, t: float, dt: float, current_a: float, soc_ocv: float, judge: bool) -> None:
        """Coulomb counting on the measured current, reset to the OCV SoC after a long rest."""
        if self.soc_est is None:
            if judge:
                self.soc_est = soc_ocv if self.cfg.soc.initial_soc is None else self.cfg.soc.initial_soc
            return
        self.soc_est += current_a * dt / (3600.0 * self.capacity_ah)
        if abs(current_a) <= self.cfg.soc.rest_current_a:
            if self._rest_since is None:
                self._rest_since = t
            if t - self._rest_since >= self.cfg.soc.rest_time_s and judge:
                self.soc_est = soc_ocv
        else:
            self._rest_since = None
        self.soc_est = min(1.0, max(0.0, self.soc_est))

    def _soc_ekf(self, t: float, dt: float, current_a: float, soc_ocv: float, judge: bool,
                 cells: np.ndarray | None, valid: bool) -> None:
        """EKF per cell every soc.period_s: predict with the mean measured current since the last
        run (the charge counted tick by tick), correct with the readings when all are valid."""
        if self._ekf is None:
            if not judge or cells is None:
                return
            from labctl.analysis.soc.filters import ExtendedKalmanFilter, FilterSettings

            cell = self.cfg.pack.cell
            start = soc_ocv if self.cfg.soc.initial_soc is None else self.cfg.soc.initial_soc
            self._ekf = ExtendedKalmanFilter(
                cell.model, self.capacity_ah, start, n_cells=self.cfg.cells, n_rc=min(1, len(
                    cell.model.rc_pairs)), settings=FilterSettings(voltage_std_v=self.cfg.soc.voltage_std_v))
            self._ekf_t, self._ekf_q, self.soc_est = t, 0.0, start
            return
        span = t - self._ekf_t
        if span >= self.cfg.soc.period_s - _EPS:
            # the state at t from the charge counted up to t; then the readings taken at t
            self._ekf.predict(self._ekf_q / span, span)
            self._ekf_t, self._ekf_q = t, 0.0
            if judge and valid and cells is not None and np.isfinite(cells).all():
                self._ekf.update(current_a, cells)
            self.soc_est = float(min(1.0, max(0.0, float(np.mean(self._ekf.soc)))))
        self._ekf_q += current_a * dt
