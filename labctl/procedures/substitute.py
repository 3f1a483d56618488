"""`{name}` substitution: plain text replacement, no expressions.

`{c_rate}` takes a parameter's value, `{cell.max_voltage_v}` a value of the
cell; `{{` and `}}` are literal braces. The result keeps a map back to the
original text so that a problem found in the substituted text can point at the
column of the original (the placeholder itself when it came from one).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labctl.cells.spec import CellLimits, CellSpec
from labctl.units import format_number

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*")


@dataclass
class TextMap:
    """Maps offsets in substituted text back to offsets in the original text."""

    # (start in new text, start in original, length in new text, whole-span replacement?)
    spans: list[tuple[int, int, int, bool]] = field(default_factory=list)
    # spans of the new text that are placeholders left unresolved (their problem is reported)
    unresolved: list[tuple[int, int]] = field(default_factory=list)

    def in_unresolved(self, offset: int) -> bool:
        return any(start <= offset < end for start, end in self.unresolved)

    def original(self, offset: int) -> int:
        if not self.spans:
            return offset
        starts = [s[0] for s in self.spans]
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        new_start, orig_start, length, replaced = self.spans[i]
        if replaced:
            return orig_start
        return orig_start + (offset - new_start)


def cell_values(cell: CellSpec) -> dict[str, str]:
    """The `cell.*` names a procedure may use."""
    values: dict[str, Any] = {
        "cell.name": cell.name,
        "cell.chemistry": cell.chemistry,
        "cell.capacity_ah": cell.capacity_ah,
        "cell.nominal_voltage_v": cell.nominal_voltage_v,
    }
    for name in CellLimits.__dataclass_fields__:
        values[f"cell.{name}"] = getattr(cell.limits, name)
    return {k: format_value(v) for k, v in values.items()}


def format_value(value: Any) -> str:
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    return str(value)


def format_display(value: Any) -> str:
    """A parameter as a step's text shows it: four significant digits (C/3 -> 0.3333).

    The step itself runs with `format_value`'s twelve digits; only the text people read
    (tables, plan, console) is shortened.
    """
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        return format_number(float(f"{value:.4g}"))
    return format_value(value)


def substitute(text: str, values: Mapping[str, str]) -> tuple[str, TextMap, list[tuple[int, str]]]:
    """Replace `{name}`s; returns (new text, offset map, problems as (offset, message))."""
    problems: list[tuple[int, str]] = []
    if "{" not in text and "}" not in text:
        return text, TextMap(), problems
    out: list[str] = []
    tmap = TextMap()
    new_pos = 0
    pos = 0

    def keep(orig_start: int, chunk: str, replaced: bool) -> None:
        nonlocal new_pos
        if chunk or replaced:
            tmap.spans.append((new_pos, orig_start, len(chunk), replaced))
        out.append(chunk)
        new_pos += len(chunk)

    for m in _TOKEN_RE.finditer(text):
        keep(pos, text[pos : m.start()], False)
        tok = m.group(0)
        if tok in ("{{", "}}"):
            keep(m.start(), tok[0], True)
        elif tok in ("{", "}"):
            problems.append(
                (m.start(), f"unmatched {tok!r}; write {tok * 2!r} for a literal brace")
            )
            keep(m.start(), tok, True)
        else:
            name_m = _NAME_RE.fullmatch(m.group(1))
            name = name_m.group(1) if name_m else m.group(1)
            if name_m is None:
                problems.append(
                    (
                        m.start(),
                        f"{tok!r} is not a name; only plain '{{parameter}}' or "
                        "'{cell.value}' substitution is supported (no expressions)",
                    )
                )
                tmap.unresolved.append((new_pos, new_pos + len(tok)))
                keep(m.start(), tok, True)
            elif name not in values:
                problems.append((m.start(), _unknown(name, values)))
                tmap.unresolved.append((new_pos, new_pos + len(tok)))
                keep(m.start(), tok, True)
            else:
                keep(m.start(), values[name], True)
        pos = m.end()
    keep(pos, text[pos:], False)
    return "".join(out), tmap, problems


def _unknown(name: str, values: Mapping[str, str]) -> str:
    from labctl.suggest import did_you_mean

    params = sorted(k for k in values if not k.startswith("cell."))
    cells = sorted(k for k in values if k.startswith("cell."))
    hint = did_you_mean(name, values)
    if name.startswith("cell."):
        return f"unknown cell value {{{name}}}{hint} (allowed: {', '.join(cells)})"
    declared = ", ".join(params) if params else "none"
    return (
        f"unknown parameter {{{name}}}{hint} (declared parameters: {declared}; "
        f"declare it under 'parameters:'; cell values: {', '.join(cells)})"
    )
