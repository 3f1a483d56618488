"""Impedance of a simulated cell or pellet at its present state: closed-form equivalent circuits.

Battery cell (`CellImpedance`, or derived from the DC model when the cell file has
no `impedance:` section):

    Z = R_s + j w L + sum_k R_k / (1 + R_k Q_k (j w)^alpha_k) + A_W (1 - j) / sqrt(w)

- R_s, R_k and A_W follow SoC (tables) and temperature (Arrhenius,
  R(T) = R(T_ref) exp(Ea/k_B (1/T - 1/T_ref))); Q_k does not (a double layer's
  capacitance barely moves with temperature), so arcs move to higher
  frequencies as the cell warms.
- Q_k is fixed by the arc's apex frequency at reference conditions:
  tau = (R Q)^(1/alpha) = 1 / (2 pi f_apex), so Q = tau^alpha / R.

Ageing: every resistance times the ageing resistance factor of the cycler's
cell (`aged_values`); the CPE Q stay, so arcs move to lower frequency.

Stack pressure (contact model): an interface touches only where asperities are
pressed flat. The fraction in contact grows with pressure and saturates:

    phi(P) = phi_0 + (1 - phi_0) (1 - exp(-P / P_c))

(phi_0: the contact left at zero pressure; P_c: the characteristic pressure).
Ions cross only the contacting part, so a contact arc's resistance is R/phi
and its capacitance Q*phi (less area): the arc shrinks as pressure rises while
its apex frequency stays put, as measured on solid-state cells. The
relation is nonlinear and saturating: most of the drop happens below ~2 P_c.

Pellet between blocking electrodes (`PelletImpedance`):

    Z = R_lead + bulk arc + grain-boundary arc + 1/(Q_el (j w)^alpha_el)

- bulk: R_b = L / (sigma_b A), capacitance the geometric one,
  C_b = eps_0 eps_r A / L, so its apex is at sigma_b / (2 pi eps_0 eps_r)
  whatever the geometry;
- grain boundary: R_gb = L / (sigma_gb A) (apparent conductivity), C_gb given;
- both conductivities follow sigma T = sigma_ref T_ref exp(-Ea/k_B (1/T - 1/T_ref));
- blocking electrodes: a double-layer CPE per electrode area, so the
  spectrum ends in a near-vertical capacitive spike (no DC current flows).
For a CPE arc with capacitance C the Q is chosen so its apex matches R C:
(R Q)^(1/alpha) = R C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from labctl.cells.impedance_spec import ArcSpec, CellImpedance, PelletImpedance
from labctl.cells.spec import BOLTZMANN_EV_PER_K, ZERO_C_IN_K, CellModel, CellSpec, Table

EPSILON_0_F_PER_M = 8.8541878128e-12
# A DC model's RC time constants are minutes (lumped transfer + diffusion), not EIS apexes;
# a derived spectrum puts the charge-transfer arc at a typical Li-ion apex instead.
DERIVED_APEX_HZ = 20.0
DERIVED_ALPHA = 0.85


@dataclass(frozen=True)
class Arc:
    r_ohm: float
    q: float  # CPE Q, Ohm^-1 s^alpha
    alpha: float

    @property
    def apex_hz(self) -> float:
        return 1.0 / (2 * math.pi * (self.r_ohm * self.q) ** (1.0 / self.alpha))


@dataclass(frozen=True)
class CircuitValues:
    """Element values of the model circuit at one state (SI)."""

    series_ohm: float
    inductance_h: float = 0.0
    arcs: tuple[Arc, ...] = ()
    warburg_ohm_s05: float = 0.0
    tail_q: float | None = None  # blocking electrodes: series CPE Q (None = none)
    tail_alpha: float = 1.0
    notes: dict = field(default_factory=dict)

    def impedance(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Z(f), vectorised over frequency."""
        w = 2 * np.pi * np.asarray(frequency_hz, dtype=float)
        jw = 1j * w
        z = self.series_ohm + jw * self.inductance_h + 0j
        for arc in self.arcs:
            z = z + arc.r_ohm / (1.0 + arc.r_ohm * arc.q * jw ** arc.alpha)
        if self.warburg_ohm_s05 > 0:
            z = z + self.warburg_ohm_s05 * (1 - 1j) / np.sqrt(w)
        if self.tail_q is not None:
            z = z + 1.0 / (self.tail_q * jw ** self.tail_alpha)
        return z

    def dc_resistance_ohm(self) -> float:
        """The resistance to a slow DC current (Warburg and blocking tail left out)."""
        return self.series_ohm + sum(a.r_ohm for a in self.arcs)


def arrhenius(ea_ev: float, temperature_c: float, reference_c: float) -> float:
    """exp(Ea/k_B (1/T - 1/T_ref)): how much a resistance grows below T_ref."""
    t, t_ref = temperature_c + ZERO_C_IN_K, reference_c + ZERO_C_IN_K
    return math.exp(ea_ev / BOLTZMANN_EV_PER_K * (1.0 / t - 1.0 / t_ref))


def derived_impedance(model: CellModel) -> CellImpedance:
    """A spectrum from the DC model, for cells whose file has no `impedance:` section.

    Series R = r0; the first RC pair's R becomes a charge-transfer arc at
    DERIVED_APEX_HZ; the second pair (the slow one) a Warburg tail whose
    |Z_W| equals its R at w = 1/tau, so A_W = R2 / sqrt(2 tau2).
    """
    arcs: tuple[ArcSpec, ...] = ()
    warburg = Table.constant(0.0)
    if model.rc_pairs:
        arcs = (ArcSpec(model.rc_pairs[0].r_ohm, DERIVED_APEX_HZ, DERIVED_ALPHA, False, "ct"),)
    if len(model.rc_pairs) > 1:
        pair = model.rc_pairs[1]
        soc = pair.r_ohm.soc
        a_w = pair.r_ohm(soc) / np.sqrt(2.0 * pair.tau_s(soc))
        warburg = Table(soc, np.asarray(a_w, dtype=float))
    return CellImpedance(None, 0.0, arcs, warburg)


def cell_values(imp: CellImpedance, model: CellModel, soc: float, temperature_c: float,
                pressure_mpa: float | None = None) -> CircuitValues:
    """The cell circuit's element values at SoC, temperature and stack pressure."""
    t_ref = imp.reference_temperature_c if imp.reference_temperature_c is not None \
        else model.reference_temperature_c
    ea = imp.activation_energy_ev if imp.activation_energy_ev is not None \
        else model.activation_energy_ev
    factor = arrhenius(ea, temperature_c, t_ref)
    series_table = imp.series_ohm if imp.series_ohm is not None else model.r0_ohm
    # 2-D tables carry their own temperature dependence (as in the DC model).
    def at(table: Table) -> float:
        value = float(table(soc, temperature_c))
        return value if table.depends_on_temperature else value * factor

    phi = 1.0
    if imp.contact is not None:
        p = imp.contact.default_pressure_mpa if pressure_mpa is None else pressure_mpa
        phi = imp.contact.contact_fraction(p)
    arcs = []
    for spec in imp.arcs:
        r_ref = float(spec.r_ohm(soc, t_ref))  # Q is set at reference conditions
        tau = 1.0 / (2 * math.pi * spec.f_apex_hz)
        q = tau ** spec.alpha / r_ref
        r = at(spec.r_ohm)
        if spec.contact:
            r, q = r / phi, q * phi
        arcs.append(Arc(r, q, spec.alpha))
    return CircuitValues(at(series_table), imp.inductance_h, tuple(arcs),
                         at(imp.warburg_ohm_s05), notes={"contact_fraction": phi})


def aged_values(v: CircuitValues, factor: float) -> CircuitValues:
    """Ageing: every resistance (series, arcs, Warburg) times the cycler's ageing
    resistance factor, 1 + g (1 - capacity fraction) (labctl/sim/ageing.py), the
    factor the DC model's resistances follow; the CPE Q stay, so each arc's apex
    moves down in frequency by factor^(1/alpha) as the cell ages (a growing
    interphase resists more, its double layer area stays)."""
    if factor == 1.0:
        return v
    arcs = tuple(Arc(a.r_ohm * factor, a.q, a.alpha) for a in v.arcs)
    return CircuitValues(v.series_ohm * factor, v.inductance_h, arcs, v.warburg_ohm_s05 * factor,
                         v.tail_q, v.tail_alpha, notes={**v.notes, "resistance_factor": factor})


def pellet_conductivities(p: PelletImpedance, temperature_c: float) -> tuple[float, float]:
    """(sigma_bulk, sigma_gb) in S/cm at a temperature: sigma T Arrhenius."""
    t, t_ref = temperature_c + ZERO_C_IN_K, p.reference_temperature_c + ZERO_C_IN_K
    def law(sigma_ref: float, ea: float) -> float:
        return sigma_ref * (t_ref / t) / arrhenius(ea, temperature_c, p.reference_temperature_c)

    return (law(p.bulk_conductivity_s_per_cm, p.bulk_activation_energy_ev),
            law(p.gb_conductivity_s_per_cm, p.gb_activation_energy_ev))


def _cpe_arc(r_ohm: float, capacitance_f: float, alpha: float) -> Arc:
    return Arc(r_ohm, (r_ohm * capacitance_f) ** alpha / r_ohm, alpha)


def pellet_values(p: PelletImpedance, temperature_c: float) -> CircuitValues:
    sigma_b, sigma_gb = pellet_conductivities(p, temperature_c)
    length_cm, area_cm2 = p.thickness_mm / 10.0, p.area_cm2
    r_b = length_cm / (sigma_b * area_cm2)
    r_gb = length_cm / (sigma_gb * area_cm2)
    c_b = EPSILON_0_F_PER_M * p.relative_permittivity * (area_cm2 * 1e-4) / (length_cm * 1e-2)
    # Two blocking electrodes in series: each has the full area's double layer.
    q_el = p.electrode_capacitance_f_per_cm2 * area_cm2 / 2.0
    return CircuitValues(p.lead_resistance_ohm, 0.0,
                         (_cpe_arc(r_b, c_b, p.bulk_alpha), _cpe_arc(r_gb, p.gb_capacitance_f,
                                                                       p.gb_alpha)),
                         0.0, q_el, p.electrode_alpha,
                         notes={"sigma_bulk_s_per_cm": sigma_b, "sigma_gb_s_per_cm": sigma_gb})


class ImpedanceModel:
    """The impedance of one cell file's cell (or pellet) at a given state."""

    def __init__(self, cell: CellSpec):
        self.cell = cell
        spec = cell.extra.get("impedance")
        if spec is None:
            if cell.model is None:
                raise ValueError(f"cell {cell.name!r} has neither a model nor an impedance section")
            spec = derived_impedance(cell.model)
        self.spec: CellImpedance | PelletImpedance = spec

    @property
    def is_pellet(self) -> bool:
        return isinstance(self.spec, PelletImpedance)

    @property
    def default_pressure_mpa(self) -> float | None:
        contact = self.spec.contact
        return None if contact is None else contact.default_pressure_mpa

    def values(self, soc: float, temperature_c: float, pressure_mpa: float | None = None,
               resistance_factor: float = 1.0) -> CircuitValues:
        if isinstance(self.spec, PelletImpedance):
            return pellet_values(self.spec, temperature_c)
        assert self.cell.model is not None
        v = cell_values(self.spec, self.cell.model, soc, temperature_c, pressure_mpa)
        return aged_values(v, resistance_factor)

    def impedance(self, frequency_hz: np.ndarray, soc: float, temperature_c: float,
                  pressure_mpa: float | None = None, resistance_factor: float = 1.0
                  ) -> np.ndarray:
        return self.values(soc, temperature_c, pressure_mpa,
                           resistance_factor).impedance(frequency_hz)
