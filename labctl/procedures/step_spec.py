"""What a plugin step type's `compile` function gets: the YAML under its keyword, with helpers.

A procedure writes a plugin step as a mapping under the step type's keyword:

    - eis: {mode: PEIS, start: 100 kHz, stop: 100 mHz, points_per_decade: 10}

The compiler finds the registered `StepTypeInfo` for `eis` and calls its
`compile(spec)` with a `StepSpec`. The helpers read values with units
(placeholders like `{cell.capacity_ah}` and parameters are substituted first)
and report problems at the file, line and column of the offending key, so a
plugin's messages look exactly like the core's. `compile` returns the step
object (see `capabilities.steps.PluginStep`) or None when something was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from labctl.capabilities.steps import LoggingPolicy, SourceRef
from labctl.cells.spec import CellSpec
from labctl.stations.spec import StationSpec
from labctl.yamlio import format_path

if TYPE_CHECKING:
    from labctl.procedures.compiler import _Compiler, _File

_MISSING = object()


class StepSpec:
    """One plugin step as written, plus the compiler's reading and reporting helpers."""

    def __init__(self, compiler: _Compiler, f: _File, path: tuple, keyword: str, value: Any):
        self._c = compiler
        self._f = f
        self.path = path  # of the mapping under the keyword
        self.keyword = keyword
        self.value = value
        self.start_problems = len(compiler.problems)

    # -- context -------------------------------------------------------------------------------
    @property
    def cell(self) -> CellSpec:
        return self._c.cell

    @property
    def station(self) -> StationSpec | None:
        return self._c.station

    @property
    def logging_default(self) -> LoggingPolicy:
        return self._f.logging

    @property
    def file(self) -> str:
        return self._f.display

    @property
    def folder(self):  # the procedure file's folder, for relative paths (profiles, DBCs)
        return self._f.resolved.parent

    @property
    def ok(self) -> bool:
        """No problem was reported since this step started compiling."""
        return len(self._c.problems) == self.start_problems

    def source(self, key: str | None = None) -> SourceRef:
        path = self.path + ((key,) if key is not None else ())
        line, col = self._f.doc.where(path)
        return SourceRef(self._f.display, line, col, format_path(path))

    # -- reporting -------------------------------------------------------------------------------
    def error(self, key: str | int | None, message: str) -> None:
        """Report a problem at `key` of the mapping (or at the step when None)."""
        self._c.add(self._f, self.path + ((key,) if key is not None else ()), message)

    def mapping(self, allowed: Iterable[str], required: Iterable[str] = ()) -> bool:
        """The value must be a mapping with only `allowed` keys and every `required` one.

        Unknown keys are reported but do not make it return False, so the other
        settings are still read and their problems reported in the same pass
        (`spec.ok` is False afterwards).
        """
        allowed = tuple(allowed)
        if not isinstance(self.value, dict):
            self.error(None, f"{self.keyword} is a mapping of settings; allowed keys: "
                             f"{', '.join(allowed)}")
            return False
        good = True
        for key in self.value:
            if key not in allowed:
                self.error(key, f"unknown key {key!r} in a {self.keyword} step; "
                                f"allowed: {', '.join(allowed)}")
        for key in required:
            if self.value.get(key) is None:
                self.error(None, f"a {self.keyword} step needs {key!r}")
                good = False
        return good

    # -- values ------------------------------------------------------------------------------------
    def raw(self, key: str, default: Any = None) -> Any:
        return self.value.get(key, default) if isinstance(self.value, dict) else default

    def quantity(self, key: str, kind: str, default: Any = None, *, required: bool = False,
                 minimum: float | None = None, maximum: float | None = None,
                 positive: bool = False) -> float | None:
        """A number in SI (or the unit's labctl base: MPa, °C/min) from '10 mV', '1 MHz', 25...

        `kind` is one of labctl.units' kinds (VOLTAGE, CURRENT, FREQUENCY, PRESSURE...).
        Returns `default` when the key is absent, None (and a reported problem) when bad.
        """
        raw = self.raw(key, _MISSING)
        if raw is _MISSING or raw is None:
            if required:
                self.error(None, f"a {self.keyword} step needs {key!r}")
            return default
        x = self._c.quantity(self._f, self.path + (key,), raw, kind, key)
        if x is None:
            return None
        if positive and not x > 0:
            self.error(key, f"{key} must be greater than zero, got {x:g}")
            return None
        if minimum is not None and x < minimum:
            self.error(key, f"{key} must be at least {minimum:g}, got {x:g}")
            return None
        if maximum is not None and x > maximum:
            self.error(key, f"{key} must be at most {maximum:g}, got {x:g}")
            return None
        return x

    def integer(self, key: str, default: int | None = None, *, required: bool = False
                ) -> int | None:
        """A whole number of at least 1."""
        raw = self.raw(key, _MISSING)
        if raw is _MISSING or raw is None:
            if required:
                self.error(None, f"a {self.keyword} step needs {key!r}")
            return default
        return self._c.positive_int(self._f, self.path + (key,), raw, key)

    def text(self, key: str, default: str | None = None, *, required: bool = False
             ) -> str | None:
        """Text with placeholders substituted."""
        raw = self.raw(key, _MISSING)
        if raw is _MISSING or raw is None:
            if required:
                self.error(None, f"a {self.keyword} step needs {key!r}")
            return default
        got = self._c.text_value(self._f, self.path + (key,), raw, key)
        return got[0].strip() if got is not None else None

    def text_at(self, keys: tuple, raw: Any, what: str) -> str | None:
        """A value nested inside the step's mapping (a list item, a sub-mapping's value) as
        text with placeholders substituted; problems are located at `keys` below the step."""
        got = self._c.text_value(self._f, self.path + keys, raw, what)
        return got[0].strip() if got is not None else None

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str | None:
        """One of `options` (compared case-insensitively; returned as listed)."""
        options = tuple(options)
        got = self.text(key)
        if got is None:
            return default
        for option in options:
            if got.lower() == option.lower():
                return option
        self.error(key, f"{key} must be one of {', '.join(options)}, got {got!r}")
        return None

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.raw(key, _MISSING)
        if raw is _MISSING or raw is None:
            return default
        if not isinstance(raw, bool):
            self.error(key, f"{key} must be true or false, got {raw!r}")
            return default
        return raw

    def logging(self, key: str = "log") -> LoggingPolicy:
        """A logging policy like 'every 10 s' (the file's default when absent)."""
        raw = self.raw(key)
        if raw is None:
            return self._f.logging
        return self._c.logging_value(self._f, self.path + (key,), raw, self._f.logging)
