"""The optional `impedance:` section of a cell file: what the simulated potentiostat measures.

Two kinds (docs/eis.md has the long form):

    impedance:                        # kind: cell (default) - a battery cell
      series_ohm: TABLE               # optional; default: the model's r0_ohm
      inductance_h: 2.0e-8            # leads and cell can, >= 0
      arcs:                           # one or two R||CPE arcs, highest frequency first
        - {r_ohm: TABLE, f_apex_hz: 2000, alpha: 0.9}
        - {r_ohm: TABLE, f_apex_hz: 20, alpha: 0.8, contact: true}
      warburg_ohm_s05: TABLE          # Warburg coefficient A_W (Ohm s^-1/2), >= 0
      activation_energy_ev: 0.35      # optional; default: the model's
      contact:                        # optional; arcs with `contact: true` follow pressure
        characteristic_pressure_mpa: 5
        residual_contact: 0.2         # contact fraction at zero pressure, 0 < x <= 1
        default_pressure_mpa: 10      # the stack pressure without a pressure rig
      max_stack_pressure_mpa: 50      # optional; pressure steps above it are refused

    impedance:                        # kind: pellet - a solid-electrolyte pellet
      kind: pellet
      thickness_mm: 1.0
      area_cm2: 0.785
      reference_temperature_c: 25
      bulk: {conductivity_s_per_cm: 1.0e-4, activation_energy_ev: 0.32,
             relative_permittivity: 60, alpha: 1.0}
      grain_boundary: {conductivity_s_per_cm: 1.5e-4, activation_energy_ev: 0.42,
                       capacitance_f: 2.0e-9, alpha: 0.9}
      electrode: {capacitance_f_per_cm2: 5.0e-6, alpha: 0.9}   # blocking electrodes
      lead_resistance_ohm: 0.0

TABLEs are the cell file's tables (a number, or by SoC, optionally by temperature).
Values are given at `reference_temperature_c` (the model's) and, for contact
arcs, at full contact. The loader (`cells/load.py`) calls `read_impedance` with
its reader, so problems carry file, line and field like every other field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labctl.cells.spec import Table

KINDS = ("cell", "pellet")
CELL_FIELDS = ("kind", "series_ohm", "inductance_h", "arcs", "warburg_ohm_s05",
               "activation_energy_ev", "reference_temperature_c", "contact",
               "max_stack_pressure_mpa")
ARC_FIELDS = ("r_ohm", "f_apex_hz", "alpha", "contact", "name")
CONTACT_FIELDS = ("characteristic_pressure_mpa", "residual_contact", "default_pressure_mpa")
PELLET_FIELDS = ("kind", "thickness_mm", "area_cm2", "reference_temperature_c", "bulk",
                 "grain_boundary", "electrode", "lead_resistance_ohm", "max_stack_pressure_mpa")
BULK_FIELDS = ("conductivity_s_per_cm", "activation_energy_ev", "relative_permittivity", "alpha")
GB_FIELDS = ("conductivity_s_per_cm", "activation_energy_ev", "capacitance_f", "alpha")
ELECTRODE_FIELDS = ("capacitance_f_per_cm2", "alpha")


@dataclass(frozen=True)
class ArcSpec:
    """One R||CPE arc: R at reference temperature (and full contact); apex frequency there."""

    r_ohm: Table
    f_apex_hz: float
    alpha: float = 0.9
    contact: bool = False  # interfacial: resistance falls with stack pressure
    name: str = ""


@dataclass(frozen=True)
class ContactModel:
    """Fraction of the interface in contact as stack pressure rises (see sim/impedance.py)."""

    characteristic_pressure_mpa: float = 5.0
    residual_contact: float = 0.2
    default_pressure_mpa: float = 10.0

    def contact_fraction(self, pressure_mpa: float) -> float:
        p = max(0.0, float(pressure_mpa))
        phi0 = self.residual_contact
        return phi0 + (1.0 - phi0) * (1.0 - math.exp(-p / self.characteristic_pressure_mpa))


@dataclass(frozen=True)
class CellImpedance:
    kind = "cell"
    series_ohm: Table | None  # None: the model's r0_ohm
    inductance_h: float
    arcs: tuple[ArcSpec, ...]
    warburg_ohm_s05: Table
    activation_energy_ev: float | None = None  # None: the model's
    reference_temperature_c: float | None = None  # None: the model's
    contact: ContactModel | None = None
    max_stack_pressure_mpa: float | None = None


@dataclass(frozen=True)
class PelletImpedance:
    """A pellet between blocking electrodes; conductivities at the reference temperature.

    The grain-boundary "conductivity" is the apparent one, L / (R_gb A); the
    total is then 1/sigma_total = 1/sigma_bulk + 1/sigma_gb.
    Temperature law: sigma T = A exp(-Ea / (k_B T)) for both.
    """

    kind = "pellet"
    thickness_mm: float
    area_cm2: float
    reference_temperature_c: float
    bulk_conductivity_s_per_cm: float
    bulk_activation_energy_ev: float
    relative_permittivity: float
    bulk_alpha: float
    gb_conductivity_s_per_cm: float
    gb_activation_energy_ev: float
    gb_capacitance_f: float
    gb_alpha: float
    electrode_capacitance_f_per_cm2: float
    electrode_alpha: float
    lead_resistance_ohm: float = 0.0
    max_stack_pressure_mpa: float | None = None
    contact = None  # pellets here have no pressure-dependent contact


def read_impedance(reader: Any, value: Any, path: tuple = ("impedance",)
                   ) -> CellImpedance | PelletImpedance | None:
    """Read the section with the cell loader's `_Reader` (its number/table/mapping helpers)."""
    if not isinstance(value, dict):
        reader.err(path, "must be a mapping (kind: cell or pellet, and its fields)")
        return None
    kind = value.get("kind", "cell")
    if kind not in KINDS:
        reader.err(path + ("kind",), f"unknown impedance kind {kind!r}; allowed: {', '.join(KINDS)}")
        return None
    return _pellet(reader, value, path) if kind == "pellet" else _cell(reader, value, path)


def _alpha(reader: Any, data: dict, path: tuple, default: float) -> float | None:
    a = reader.number(data, "alpha", path, required=False, default=default, positive=True)
    if a is not None and a > 1.0:
        reader.err(path + ("alpha",), f"must be within 0 < alpha <= 1, got {a:g}")
        return None
    return a


def _cell(reader: Any, data: dict, path: tuple) -> CellImpedance | None:
    reader.mapping(data, path, CELL_FIELDS, ", ".join(CELL_FIELDS))
    series = reader.table(data, "series_ohm", path, positive=True) if "series_ohm" in data else None
    inductance = reader.number(data, "inductance_h", path, required=False, default=0.0, minimum=0.0)
    warburg = (reader.table(data, "warburg_ohm_s05", path, positive=False)
               if "warburg_ohm_s05" in data else Table.constant(0.0))
    if warburg is not None and (warburg.values < 0).any():
        reader.err(path + ("warburg_ohm_s05",), "must be >= 0")
        warburg = None
    ea = reader.number(data, "activation_energy_ev", path, required=False, minimum=0.0)
    t_ref = reader.number(data, "reference_temperature_c", path, required=False, minimum=-273.15)
    p_max = reader.number(data, "max_stack_pressure_mpa", path, required=False, positive=True)
    arcs: list[ArcSpec] | None = []
    raw_arcs = data.get("arcs", [])
    if not isinstance(raw_arcs, list) or len(raw_arcs) > 2:
        reader.err(path + ("arcs",), "must be a list of one or two {r_ohm, f_apex_hz, alpha} arcs")
        arcs = None
    else:
        for k, item in enumerate(raw_arcs):
            where = path + ("arcs", k)
            arc = reader.mapping(item, where, ARC_FIELDS, ", ".join(ARC_FIELDS))
            if arc is None:
                arcs = None
                continue
            r = reader.table(arc, "r_ohm", where, positive=True)
            f = reader.number(arc, "f_apex_hz", where, positive=True, unit=" of Hz")
            a = _alpha(reader, arc, where, 0.9)
            contact = arc.get("contact", False)
            if not isinstance(contact, bool):
                reader.err(where + ("contact",), f"must be true or false, got {contact!r}")
                contact = None
            if None in (r, f, a, contact) or arcs is None:
                arcs = None
                continue
            arcs.append(ArcSpec(r, f, a, contact, str(arc.get("name", f"arc{k + 1}"))))
    contact_model = None
    if data.get("contact") is not None:
        where = path + ("contact",)
        c = reader.mapping(data["contact"], where, CONTACT_FIELDS, ", ".join(CONTACT_FIELDS))
        if c is not None:
            p0 = reader.number(c, "characteristic_pressure_mpa", where, required=False, default=5.0,
                               positive=True)
            phi0 = reader.number(c, "residual_contact", where, required=False, default=0.2,
                                 positive=True)
            if phi0 is not None and phi0 > 1.0:
                reader.err(where + ("residual_contact",), f"must be within 0 < x <= 1, got {phi0:g}")
                phi0 = None
            pd = reader.number(c, "default_pressure_mpa", where, required=False, default=10.0,
                               minimum=0.0)
            if None not in (p0, phi0, pd):
                contact_model = ContactModel(p0, phi0, pd)
    if None in (inductance, warburg, arcs) or (series is None and "series_ohm" in data):
        return None
    return CellImpedance(series, inductance, tuple(arcs), warburg, ea, t_ref, contact_model, p_max)


def _pellet(reader: Any, data: dict, path: tuple) -> PelletImpedance | None:
    reader.mapping(data, path, PELLET_FIELDS, ", ".join(PELLET_FIELDS))
    num = reader.number
    thickness = num(data, "thickness_mm", path, positive=True, unit=" of mm")
    area = num(data, "area_cm2", path, positive=True, unit=" of cm2")
    t_ref = num(data, "reference_temperature_c", path, required=False, default=25.0,
                minimum=-273.15)
    lead = num(data, "lead_resistance_ohm", path, required=False, default=0.0, minimum=0.0)
    p_max = num(data, "max_stack_pressure_mpa", path, required=False, positive=True)
    out: dict[str, Any] = {}
    for key, fields in (("bulk", BULK_FIELDS), ("grain_boundary", GB_FIELDS),
                        ("electrode", ELECTRODE_FIELDS)):
        where = path + (key,)
        if data.get(key) is None:
            reader.err(where, f"missing required section {key!r} with {', '.join(fields)}")
            continue
        sub = reader.mapping(data[key], where, fields, ", ".join(fields))
        if sub is None:
            continue
        if key == "electrode":
            out["electrode_capacitance_f_per_cm2"] = num(sub, "capacitance_f_per_cm2", where,
                                                         positive=True, unit=" of F/cm2")
            out["electrode_alpha"] = _alpha(reader, sub, where, 0.9)
            continue
        prefix = "bulk" if key == "bulk" else "gb"
        out[f"{prefix}_conductivity_s_per_cm"] = num(sub, "conductivity_s_per_cm", where,
                                                     positive=True, unit=" of S/cm")
        out[f"{prefix}_activation_energy_ev"] = num(sub, "activation_energy_ev", where,
                                                    minimum=0.0, unit=" of eV")
        out[f"{prefix}_alpha"] = _alpha(reader, sub, where, 1.0 if key == "bulk" else 0.9)
        if key == "bulk":
            out["relative_permittivity"] = num(sub, "relative_permittivity", where,
                                               required=False, default=60.0, positive=True)
        else:
            out["gb_capacitance_f"] = num(sub, "capacitance_f", where, positive=True, unit=" of F")
    expected = 10
    if None in (thickness, area, t_ref, lead) or len(out) != expected or None in out.values():
        return None
    return PelletImpedance(thickness_mm=thickness, area_cm2=area, reference_temperature_c=t_ref,
                           lead_resistance_ohm=lead, max_stack_pressure_mpa=p_max, **out)
