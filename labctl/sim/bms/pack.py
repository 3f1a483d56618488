"""A pack of N series cells, vectorised: OCV from the cell file's table, R0 + one RC pair,
lumped heating, with cell-to-cell spread of capacity, resistance and initial SoC.

Each cell is the foundation's equivalent-circuit model reduced to what a BMS sees at
its 10 ms tick: OCV(SoC) at 25 °C, R0(SoC) and the cell file's first RC pair (the
slow pairs barely move within a protection delay). Resistances do not follow
temperature here. The cell voltages a BMS measures are taken with the balancing
switches open (BMS front-ends pause balancing to measure), so the balancing current
moves charge but adds no IR drop to the readings.

The stimulus a hardware-in-the-loop bench applies is part of the pack: the pack
current (a cycler or the load), a cell emulator forcing a cell's voltage, heaters or
a climate box forcing a sensor's temperature, and the stack-pressure rig.
"""

from __future__ import annotations

import numpy as np

from labctl.sim.bms.config import PackConfig


class Pack:
    def __init__(self, cfg: PackConfig, cells: int):
        model = cfg.cell.model
        if model is None:
            raise ValueError(f"cell {cfg.cell.name!r} has no model section to simulate")
        rng = np.random.default_rng(cfg.seed)
        self.n = cells
        self.cell = cfg.cell
        self._ocv_soc = np.asarray(model.ocv_v.soc, float)
        ocv = np.asarray(model.ocv_v.values, float)
        if ocv.ndim == 2:  # a temperature-dependent table: the 25 °C row
            ocv = np.asarray(model.ocv_v(self._ocv_soc, 25.0), float)
        self._ocv_v = np.maximum.accumulate(ocv)  # monotonic, so it can be inverted
        self._r0 = model.r0_ohm
        pair = model.rc_pairs[0] if model.rc_pairs else None
        self._r1 = float(np.mean(pair.r_ohm.values)) if pair else 0.0
        self._tau1 = float(np.mean(pair.tau_s.values)) if pair else 1.0
        self._heat_c = model.thermal.heat_capacity_j_per_k
        self._heat_h = model.thermal.heat_transfer_w_per_k
        self.capacity_ah = cfg.cell.capacity_ah * (1 + cfg.capacity_spread * rng.standard_normal(cells))
        self.r_scale = 1 + cfg.resistance_spread * rng.standard_normal(cells)
        self.soc = np.clip(cfg.initial_soc + cfg.soc_spread * rng.standard_normal(cells), 0, 1)
        self.v_rc = np.zeros(cells)
        self.ambient_c = cfg.ambient_c
        self.temperature_c = np.full(cells, cfg.ambient_c)
        self.stack_pressure_mpa = cfg.stack_pressure_mpa
        self.current_a = 0.0  # pack current, + = charge
        self.balance_a = np.zeros(cells)  # per-cell balancing current, + = into the cell
        self.forced_v = np.full(cells, np.nan)  # cell emulator (NaN = the real cell)
        self.forced_t = np.full(cells, np.nan)
        self.charge_in_ah = 0.0  # reference Coulomb count of the pack current
        self.balance_loss_j = 0.0  # dissipated by balancing (bleed resistors, converter losses)
        self.balance_moved_j = 0.0  # moved between cells by active balancing

    # -- OCV ----------------------------------------------------------------------------------
    def ocv(self, soc: np.ndarray | float) -> np.ndarray:
        return np.interp(soc, self._ocv_soc, self._ocv_v)

    def soc_for_ocv(self, v: np.ndarray | float) -> np.ndarray:
        return np.interp(v, self._ocv_v, self._ocv_soc)

    # -- physics ------------------------------------------------------------------------------------
    def trajectory(self, rows: int, dt: float) -> dict[str, np.ndarray]:
        """States at now + k*dt, k = 0..rows-1, with the present current and balancing held.

        Closed form for constant inputs: SoC linear, the RC voltage exponential, the lumped
        temperature exponential towards ambient + I^2 R0 / h (R0 at the present SoC).
        """
        k = np.arange(rows, dtype=float)[:, None]
        i_cell = self.current_a + self.balance_a
        soc = np.clip(self.soc + i_cell * k * dt / (3600.0 * self.capacity_ah), 0.0, 1.0)
        ak = np.exp(-k * dt / self._tau1)
        v_rc = self.v_rc * ak + self._r1 * self.r_scale * self.current_a * (1 - ak)
        r0 = self._r0(soc) * self.r_scale
        heat = self.current_a ** 2 * r0[0]
        t_inf = self.ambient_c + heat / self._heat_h
        temp = t_inf + (self.temperature_c - t_inf) * np.exp(-k * dt * self._heat_h / self._heat_c)
        v = self.ocv(soc) + self.current_a * r0 + v_rc
        v = np.where(np.isnan(self.forced_v), v, self.forced_v)
        temp_seen = np.where(np.isnan(self.forced_t), temp, self.forced_t)
        return {"soc": soc, "v_rc": v_rc, "temperature_c": temp, "cell_v": v, "cell_t": temp_seen}

    def commit(self, traj: dict[str, np.ndarray], row: int, dt: float) -> None:
        """Take the state of `row` (row * dt later) as the present one; count energies."""
        self.soc = traj["soc"][row].copy()
        self.v_rc = traj["v_rc"][row].copy()
        self.temperature_c = traj["temperature_c"][row].copy()
        v = traj["cell_v"][:row].sum(axis=0) * dt  # volt-seconds of each cell over the span
        bal = self.balance_a
        taken = float(np.sum(-bal[bal < 0] * v[bal < 0]))
        given = float(np.sum(bal[bal > 0] * v[bal > 0]))
        self.balance_moved_j += given
        self.balance_loss_j += taken - given
        self.charge_in_ah += self.current_a * row * dt / 3600.0

    def cell_voltage_v(self) -> np.ndarray:
        """True terminal voltages (balancing switches open), cell emulator overrides applied."""
        v = self.ocv(self.soc) + self.current_a * self._r0(self.soc) * self.r_scale + self.v_rc
        return np.where(np.isnan(self.forced_v), v, self.forced_v)

    def cell_temperature_c(self) -> np.ndarray:
        return np.where(np.isnan(self.forced_t), self.temperature_c, self.forced_t)

    def set_soc(self, soc: float | np.ndarray, cell: int | None = None) -> None:
        """Put cells at rest at a SoC (as a bench would, by charging each one)."""
        if cell is None:
            self.soc[:] = soc
            self.v_rc[:] = 0.0
        else:
            self.soc[cell] = soc
            self.v_rc[cell] = 0.0
