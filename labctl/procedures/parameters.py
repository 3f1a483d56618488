"""Procedure parameters: declarations with defaults, units and ranges, and overrides.

    parameters:
      c_rate: {default: 1.0, min: 0.05, max: 5, unit: C, description: charge rate}
      n_cycles: {default: 3, min: 1, max: 10000, type: int}
      label: cell-a                # shorthand: the default alone, type from the value

Types are float, int and str. Without `type`, a declaration with a `unit` is a
float, otherwise the default's own type decides. Overrides (`--param name=value`
or an include's `with:`) are text or YAML numbers; a float parameter with a unit
also accepts the value with any unit of the same kind ("30 min" for a parameter
in h), converted to the declared unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labctl.errors import Problem
from labctl.units import C_RATE, NUMBER, UnitError, parse_quantity, unit_factor, unit_kind
from labctl.yamlio import LocatedDoc

DECL_KEYS = ("default", "min", "max", "unit", "type", "description", "choices")
TYPES = ("float", "int", "str")


@dataclass(frozen=True)
class ParamDecl:
    """A procedure parameter as declared: type, default, range, unit and description."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    description: str = ""
    choices: tuple[Any, ...] | None = None

    def range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.min is not None and self.max is not None:
            return f"{self.min:g}{unit} to {self.max:g}{unit}"
        if self.min is not None:
            return f"at least {self.min:g}{unit}"
        if self.max is not None:
            return f"at most {self.max:g}{unit}"
        return f"any {self.type}" + (f" in {self.unit}" if self.unit else "")

    def coerce(self, raw: Any) -> Any:
        """Turn a YAML value or override text into this parameter's value; ValueError if bad."""
        if isinstance(raw, bool) or raw is None:
            raise ValueError(f"expected {self._expected()}, got {raw!r}")
        if self.type == "str":
            value: Any = raw if isinstance(raw, str) else str(raw)
        elif self.type == "int":
            value = _to_int(raw)
        else:
            value = self._to_float(raw)
        self._check(value)
        return value

    def _expected(self) -> str:
        if self.type == "int":
            return "a whole number"
        if self.type == "float":
            return "a number" + (f" (in {self.unit})" if self.unit else "")
        return "text"

    def _to_float(self, raw: Any) -> float:
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str):
            kinds: tuple[str, ...] = (NUMBER,)
            kind = unit_kind(self.unit) if self.unit else None
            if kind is not None:
                kinds = (kind, NUMBER)
            try:
                q = parse_quantity(raw, kinds)
            except UnitError as exc:
                raise ValueError(exc.reason) from None
            value = q.value
            if q.kind != NUMBER and self.unit and kind != C_RATE:
                value = q.value / unit_factor(self.unit)  # SI back to the declared unit
        else:
            raise ValueError(f"expected {self._expected()}, got {type(raw).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{raw!r} is not a finite number")
        return value

    def _check(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not allowed; allowed: {self.range_text()}")
        if isinstance(value, (int, float)):
            if self.min is not None and value < self.min:
                raise ValueError(
                    f"{value:g} is below the minimum {self.min:g}; allowed: {self.range_text()}"
                )
            if self.max is not None and value > self.max:
                raise ValueError(
                    f"{value:g} is above the maximum {self.max:g}; allowed: {self.range_text()}"
                )


def _to_int(raw: Any) -> int:
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if raw.is_integer():
            return int(raw)
        raise ValueError(f"expected a whole number, got {raw!r}")
    text = str(raw).strip()
    if not text.isascii():  # int() also takes Arabic-Indic, full-width... digits
        raise ValueError(f"expected a whole number written with 0-9, got {raw!r}")
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise ValueError(f"expected a whole number, got {raw!r}") from None


def parse_declarations(
    doc: LocatedDoc, path: tuple, raw: Any, problems: list[Problem]
) -> dict[str, ParamDecl]:
    """Read a `parameters:` mapping; problems go to `problems`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(
            doc.problem(path, "parameters must be a mapping of name: {default: ..., ...}")
        )
        return {}
    out: dict[str, ParamDecl] = {}
    for name, spec in raw.items():
        where = path + (name,)
        if not name.isidentifier() or name.startswith("cell"):
            problems.append(
                doc.problem(
                    where,
                    f"parameter name {name!r} must be a plain identifier "
                    "(letters, digits, _) not starting with 'cell'",
                )
            )
            continue
        decl = _one_declaration(doc, where, name, spec, problems)
        if decl is not None:
            out[name] = decl
    return out


def _one_declaration(
    doc: LocatedDoc, where: tuple, name: str, spec: Any, problems: list[Problem]
) -> ParamDecl | None:
    if not isinstance(spec, dict):
        spec = {"default": spec}
    start = len(problems)
    for key in spec:
        if key not in DECL_KEYS:
            problems.append(
                doc.problem(where + (key,), f"unknown key {key!r}; allowed: {', '.join(DECL_KEYS)}")
            )
    if "default" not in spec or spec["default"] is None:
        problems.append(doc.problem(where, "a parameter needs a default"))
        return None
    default = spec["default"]
    unit = spec.get("unit")
    if unit is not None:
        if not isinstance(unit, str) or unit_kind(unit) is None:
            problems.append(
                doc.problem(
                    where + ("unit",),
                    f"unknown unit {unit!r}; use a unit like C, A, V, min, h, °C, Ah",
                )
            )
            unit = None
    ptype = spec.get("type")
    if ptype is None:
        if spec.get("unit") is not None:
            ptype = "float"
        elif isinstance(default, bool):
            ptype = "str"
        elif isinstance(default, int):
            ptype = "int"
        elif isinstance(default, float):
            ptype = "float"
        else:
            ptype = "str"
    if ptype not in TYPES:
        problems.append(
            doc.problem(where + ("type",), f"unknown type {ptype!r}; allowed: {', '.join(TYPES)}")
        )
        return None
    bounds: dict[str, float | None] = {}
    for key in ("min", "max"):
        val = spec.get(key)
        if val is not None and (
            isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val)
        ):
            problems.append(doc.problem(where + (key,), f"{key} must be a number"))
            val = None
        bounds[key] = val
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        problems.append(doc.problem(where + ("min",), "min is larger than max"))
    choices = spec.get("choices")
    if choices is not None and not isinstance(choices, list):
        problems.append(doc.problem(where + ("choices",), "choices must be a list"))
        choices = None
    description = spec.get("description", "")
    if len(problems) > start:
        return None
    decl = ParamDecl(
        name=name,
        type=ptype,
        default=None,
        min=bounds["min"],
        max=bounds["max"],
        unit=unit,
        description=str(description or ""),
        choices=tuple(choices) if choices is not None else None,
    )
    try:
        value = decl.coerce(default)
    except ValueError as exc:
        problems.append(doc.problem(where + ("default",), f"default: {exc}"))
        return None
    return ParamDecl(**{**decl.__dict__, "default": value})


def resolve(
    decls: Mapping[str, ParamDecl],
    overrides: Mapping[str, Any],
    report: Callable[[str, str], None],
) -> dict[str, Any]:
    """Defaults overridden by `overrides`; bad or unknown names go to `report(name, message)`."""
    values = {name: d.default for name, d in decls.items()}
    declared = ", ".join(decls) if decls else "none"
    for name, raw in overrides.items():
        decl = decls.get(name)
        if decl is None:
            from labctl.suggest import did_you_mean

            report(name, f"unknown parameter {name!r}{did_you_mean(name, decls)} "
                         f"(this procedure declares: {declared})")
            continue
        try:
            values[name] = decl.coerce(raw)
        except ValueError as exc:
            report(name, f"{name}={raw}: {exc}")
    return values
