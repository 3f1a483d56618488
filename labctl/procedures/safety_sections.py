"""A procedure's `safety:` and `abuse:` sections, and the run's hard limits from them.

Split from the compiler (one concern). The run's hard limits are the cell's datasheet limits
widened a little, so that a step ending exactly at a limit (and the sample that overshoots it by
noise or one control period) does not abort the run. A file's `safety:` may tighten them; an
abuse procedure may loosen the limits its `abuse: allow:` names, to the values `safety:` gives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from labctl.capabilities.limits import SafetyLimits
from labctl.cells.spec import CellSpec
from labctl.procedures.check import cell_label
from labctl.procedures.values import ProcFile
from labctl.units import CURRENT, TEMPERATURE, VOLTAGE
from labctl.yamlio import LocatedDoc

VOLTAGE_TOLERANCE_V = 0.05
CURRENT_TOLERANCE = 1.05
ABUSE_KEYS = ("allow", "reason")

# safety key -> (kind of quantity, "max" or "min")
SAFETY_KEYS: dict[str, tuple[str, str]] = {
    "max_voltage_v": (VOLTAGE, "max"),
    "min_voltage_v": (VOLTAGE, "min"),
    "max_charge_current_a": (CURRENT, "max"),
    "max_discharge_current_a": (CURRENT, "max"),
    "max_temperature_c": (TEMPERATURE, "max"),
    "min_temperature_c": (TEMPERATURE, "min"),
}
_SAFETY_UNITS = {VOLTAGE: "V", CURRENT: "A", TEMPERATURE: "°C"}


class SafetySections:
    """Mixed into the compiler: `safety:`, `abuse:` and the resulting SafetyLimits."""

    def abuse_section(self, f: ProcFile, value: Any) -> None:
        """`abuse: {allow: [max_voltage_v, ...], reason: ...}`: this procedure may cross those
        cell limits, up to the values its `safety:` section gives them (see docs/abuse.md)."""
        form = ("abuse is a mapping like {allow: [max_voltage_v, max_temperature_c], reason: "
                "'overcharge test per UL 2580'}; allow lists the cell limits it may cross "
                f"({', '.join(SAFETY_KEYS)}), each given its new value in safety:")
        if len(self.stack) > 1:
            self.add(f, ("abuse",), "abuse: only the top procedure file may declare it, "
                                    "not an included file")
            return
        if not isinstance(value, dict):
            self.add(f, ("abuse",), form)
            return
        for key in value:
            if key not in ABUSE_KEYS:
                self.add(f, ("abuse", key), f"unknown key {key!r} in abuse; allowed: "
                                            f"{', '.join(ABUSE_KEYS)}")
        allow = value.get("allow")
        if isinstance(allow, str):
            allow = [allow]
        if not isinstance(allow, list):
            self.add(f, ("abuse", "allow") if "allow" in value else ("abuse",), form)
            allow = []
        names: list[str] = []
        for i, name in enumerate(allow):
            if name not in SAFETY_KEYS:
                self.add(f, ("abuse", "allow", i), f"unknown limit {name!r}; allowed: "
                                                   f"{', '.join(SAFETY_KEYS)}")
            else:
                names.append(name)
        reason = value.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            self.add(f, ("abuse", "reason") if "reason" in value else ("abuse",),
                     "abuse needs a reason: text saying why (the test and its standard)")
        self.abuse_allow = tuple(dict.fromkeys(names))
        self.abuse_reason = reason.strip() if isinstance(reason, str) else ""

    def check_abuse(self, doc: LocatedDoc) -> None:
        """Every allowed limit has an explicit value; the station's chamber is abuse-rated."""
        if self.abuse_allow is None:
            return
        for i, name in enumerate(self.abuse_allow):
            if name not in self.safety:
                unit = _SAFETY_UNITS[SAFETY_KEYS[name][0]]
                self.add(doc, ("abuse", "allow", i),
                         f"abuse allows {name}: give its new limit in safety: "
                         f"(e.g. {name}: ... {unit}); an abuse procedure is still bounded")
        if self.station is None:
            return
        from labctl.capabilities.chamber import chamber_is_abuse_rated
        from labctl.procedures.check import station_label

        chamber = self.station.instruments.get("chamber")
        if chamber is None or not chamber_is_abuse_rated(chamber.ranges):
            what = ("binds no chamber" if chamber is None else
                    f"has a chamber ({chamber.driver}) that is not abuse-rated")
            self.add(doc, ("abuse",),
                     f"an abuse procedure must run on a station whose chamber is abuse-rated; "
                     f"{station_label(self.station)} {what}; allowed: a station whose chamber "
                     "ranges say abuse_rated: 1 (e.g. instruments/sim-abuse.yaml)")

    def rules_cell(self) -> CellSpec:
        """The cell whose limits charge/discharge steps end at: an abuse permission moves an
        allowed voltage limit to the procedure's safety value."""
        # The step ends a tolerance inside the hard limit, as it does inside the cell's.
        moved = {k: self.safety[k] + (-VOLTAGE_TOLERANCE_V if k.startswith("max") else
                                      VOLTAGE_TOLERANCE_V)
                 for k in ("max_voltage_v", "min_voltage_v")
                 if self.abuse_allow and k in self.abuse_allow and k in self.safety}
        if not moved:
            return self.cell
        return replace(self.cell, limits=replace(self.cell.limits, **moved))

    def safety_section(self, f: ProcFile, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(f, ("safety",), f"safety is a mapping; allowed keys: {', '.join(SAFETY_KEYS)}")
            return
        lim = self.cell.limits
        for key, raw in value.items():
            path = ("safety", key)
            if key not in SAFETY_KEYS:
                self.add(
                    f, path, f"unknown safety limit {key!r}; allowed: {', '.join(SAFETY_KEYS)}"
                )
                continue
            kind, side = SAFETY_KEYS[key]
            x = self.quantity(f, path, raw, kind, key)
            if x is None:
                continue
            cell_value = getattr(lim, key)
            unit = _SAFETY_UNITS[kind]
            looser = x > cell_value if side == "max" else x < cell_value
            if looser and key not in (self.abuse_allow or ()):
                word = "or lower" if side == "max" else "or higher"
                self.add(
                    f,
                    path,
                    f"{key} {x:g} {unit} is looser than the limit {cell_value:g} {unit} of "
                    f"{cell_label(self.cell)}; a procedure may only tighten the cell's limits: "
                    f"allowed {cell_value:g} {unit} {word}",
                )
                continue
            old = self.safety.get(key)
            if old is None or (x < old if side == "max" else x > old):
                self.safety[key] = x

    def safety_limits(self) -> SafetyLimits:
        lim = self.cell.limits
        base = {
            "max_voltage_v": lim.max_voltage_v + VOLTAGE_TOLERANCE_V,
            "min_voltage_v": lim.min_voltage_v - VOLTAGE_TOLERANCE_V,
            "max_charge_current_a": lim.max_charge_current_a * CURRENT_TOLERANCE,
            "max_discharge_current_a": lim.max_discharge_current_a * CURRENT_TOLERANCE,
            "max_temperature_c": lim.max_temperature_c,
            "min_temperature_c": lim.min_temperature_c,
        }
        base = {k: round(v, 9) for k, v in base.items()}  # 3.65 + 0.05 reads as 3.7
        base.update(self.safety)
        return SafetyLimits(**base, abuse_allow=frozenset(self.abuse_allow or ()))
