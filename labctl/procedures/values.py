"""Reading values in procedure files: text with `{name}` substitution, quantities with
units, whole numbers and logging policies, each problem recorded where it is.

Split from the compiler (one concern); mixed into it, so `self.add` and `self.cell` are the
compiler's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.capabilities.steps import LoggingPolicy
from labctl.errors import ValidationError
from labctl.procedures.grammar import parse_logging
from labctl.procedures.substitute import TextMap, substitute
from labctl.units import CURRENT, TIME, UnitError, format_number, parse_quantity
from labctl.yamlio import LocatedDoc


@dataclass
class ProcFile:
    """One procedure file being compiled (the top file or an included one)."""

    doc: LocatedDoc
    resolved: Path
    values: dict[str, str]  # substitution values: parameters and cell.*
    logging: LoggingPolicy
    prefix: str  # prefix of PlannedStep.path for steps of this file
    # the same values as a step's text shows them (C/3 -> 0.3333, not 0.333333333333)
    display_values: dict[str, str] | None = None

    @property
    def display(self) -> str:
        return self.doc.file


class ValueReaders:
    """Mixed into the compiler: values read from a file, problems recorded with their place."""

    def sub(self, f: ProcFile, path: tuple, text: str) -> tuple[str, TextMap] | None:
        new, tmap, issues = substitute(text, f.values)
        for off, msg in issues:
            self.add(f, path, msg, off)
        return None if issues else (new, tmap)

    def text_value(
        self, f: ProcFile, path: tuple, value: Any, what: str
    ) -> tuple[str, TextMap] | None:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            self.add(f, path, _about(path, what, f"must be text, got {type_name(value)}"))
            return None
        if isinstance(value, (int, float)):
            return format_number(value), TextMap()
        return self.sub(f, path, value)

    def quantity(self, f: ProcFile, path: tuple, value: Any, kind: str, what: str) -> float | None:
        """A number (taken in SI: s, V, A, °C) or text with a unit of `kind`, e.g. 25 or '25 °C'."""
        got = self.text_value(f, path, value, what)
        if got is None:
            return None
        text, tmap = got
        try:
            if kind == TIME:
                q = parse_quantity(text, TIME, allow_bare=True)
            else:
                q = parse_quantity(text, kind, allow_bare=True)
        except UnitError as exc:
            self.add(f, path, _about(path, what, exc.reason, ": "), tmap.original(exc.offset))
            return None
        if kind == CURRENT:
            return q.to_si(self.cell.capacity_ah)
        if not math.isfinite(q.value):
            self.add(f, path, _about(path, what, "must be a finite number"))
            return None
        return q.value  # a bare number is taken in SI (s, V, A, °C)

    def positive_int(self, f: ProcFile, path: tuple, value: Any, what: str) -> int | None:
        got = value
        if isinstance(value, str):
            res = self.sub(f, path, value)
            if res is None:
                return None
            got = res[0].strip()
        if isinstance(got, bool) or got is None:
            self.add(f, path, _about(path, what,
                                     f"must be a whole number of at least 1, got {type_name(got)}"))
            return None
        try:
            if isinstance(got, float):
                if not got.is_integer():
                    raise ValueError
                n = int(got)
            elif isinstance(got, int):
                n = got
            else:
                if not str(got).isascii():  # int() takes Unicode digits too: 0-9 only
                    raise ValueError
                n = _whole(str(got))
        except (ValueError, OverflowError):
            self.add(f, path, _about(path, what, f"must be a whole number of at least 1, got {got!r}"))
            return None
        if n < 1:
            self.add(f, path, _about(path, what, f"must be at least 1, got {n}"))
            return None
        return n

    def logging_value(
        self, f: ProcFile, path: tuple, value: Any, default: LoggingPolicy
    ) -> LoggingPolicy:
        got = self.text_value(f, path, value, "log")
        if got is None:
            return default
        text, tmap = got
        try:
            return parse_logging(text, default=default, capacity_ah=self.cell.capacity_ah)
        except ValidationError as exc:
            for p in exc.problems:
                self.add(f, path, p.message, tmap.original((p.column or 1) - 1))
            return default


def _about(path: tuple, what: str, message: str, sep: str = " ") -> str:
    """`message` about the value `what`, which it names unless the problem's field (the
    path's last key, printed before every message) already does: "max_duration: must be
    text", not "max_duration: max_duration must be text"."""
    return message if path and path[-1] == what else f"{what}{sep}{message}"


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _whole(text: str) -> int:
    """A whole number written as digits or with an exponent ("1e12", which YAML leaves as
    text): exactly, however large (Decimal, not float); ValueError otherwise."""
    from decimal import Decimal, InvalidOperation

    try:
        return int(text)
    except ValueError:
        pass
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(text) from None
    if not d.is_finite() or d != d.to_integral_value() or "e" not in text.lower():
        raise ValueError(text)
    return int(d)
