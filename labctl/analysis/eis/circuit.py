"""Equivalent circuits written as impedance.py-style strings, e.g. ``R0-p(R1,CPE1)-W1``.

Grammar (whitespace is ignored)::

    circuit  := series
    series   := term ("-" term)*
    term     := "p(" series ("," series)+ ")" | element
    element  := one of R C L CPE W Wo Ws, followed by a number (R0, CPE1, Wo2)

Each element name may appear once. Parameters are ordered as written, left to
right, and named like impedance.py: an element with one parameter is called by
its name (``R0``), one with several gets ``_0``, ``_1`` (``CPE1_0`` = Q,
``CPE1_1`` = alpha).

`Circuit.impedance_and_jacobian` returns Z and the complex Jacobian dZ/dtheta:
series adds children; a parallel block is Z = 1 / sum(1/Z_i), so
dZ/dtheta = (Z / Z_i)^2 dZ_i/dtheta for a parameter of child i. Each subtree's
parameters are contiguous, so a parallel block rescales a slice of columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labctl.analysis.eis.elements import ALLOWED_ELEMENTS, ELEMENT_TYPES, ElementType, FrequencyGrid
from labctl.errors import Problem, ValidationError


@dataclass(frozen=True)
class Element:
    name: str  # e.g. "CPE1"
    type: ElementType
    column: int  # 1-based position in the circuit string
    start: int  # index of its first parameter
    stop: int

    @property
    def kind(self) -> str:
        return self.type.symbol

    @property
    def parameter_names(self) -> list[str]:
        if self.type.n_parameters == 1:
            return [self.name]
        return [f"{self.name}_{i}" for i in range(self.type.n_parameters)]


@dataclass(frozen=True)
class Series:
    children: tuple
    start: int
    stop: int


@dataclass(frozen=True)
class Parallel:
    children: tuple
    start: int
    stop: int
    column: int


Node = Element | Series | Parallel


class _Parser:
    def __init__(self, text: str, file: str | None, line: int | None, column_offset: int):
        self.text = text
        self.pos = 0
        self.file = file
        self.line = 1 if line is None else line
        self.offset = column_offset
        self.n_params = 0
        self.elements: list[Element] = []
        self.seen: dict[str, int] = {}

    def fail(self, message: str, pos: int | None = None):
        col = (self.pos if pos is None else pos) + 1
        raise ValidationError([Problem(
            self.file, self.line, col + self.offset, "circuit",
            f"{message} (column {col} of {self.text!r})")])

    def skip_space(self):
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str):
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            self.fail(f"expected {what}, found {found}")
        self.pos += 1

    def series(self) -> Node:
        start = self.n_params
        children = [self.term()]
        while self.peek() == "-":
            self.pos += 1
            children.append(self.term())
        if len(children) == 1:
            return children[0]
        return Series(tuple(children), start, self.n_params)

    def term(self) -> Node:
        self.skip_space()
        t, i = self.text, self.pos
        if t.startswith("p", i):
            j = i + 1
            while j < len(t) and t[j].isspace():
                j += 1
            if j < len(t) and t[j] == "(":
                self.pos = j + 1
                return self.parallel(i)
        return self.element()

    def parallel(self, opened_at: int) -> Parallel:
        start = self.n_params
        children = [self.series()]
        while self.peek() == ",":
            self.pos += 1
            children.append(self.series())
        if self.peek() != ")":
            found = repr(self.peek()) if self.peek() else "the end"
            self.fail(f"expected ',' or ')' to close 'p(' opened at column {opened_at + 1}, "
                      f"found {found}")
        if len(children) < 2:
            self.fail(f"'p(' at column {opened_at + 1} needs at least two branches, "
                      "e.g. p(R1,CPE1)")
        self.pos += 1
        return Parallel(tuple(children), start, self.n_params, opened_at + 1)

    def element(self) -> Element:
        self.skip_space()
        t, i = self.text, self.pos
        j = i
        while j < len(t) and t[j].isalpha():
            j += 1
        symbol = t[i:j]
        k = j
        while k < len(t) and t[k].isdigit():
            k += 1
        if not symbol:
            found = repr(t[i]) if i < len(t) else "the end"
            self.fail(f"expected an element ({ALLOWED_ELEMENTS} followed by a number, "
                      f"e.g. R0) or p(...), found {found}", i)
        if symbol not in ELEMENT_TYPES:
            self.fail(f"unknown element {symbol!r}; allowed: {ALLOWED_ELEMENTS} "
                      "and p(...) for parallel", i)
        if k == j:
            self.fail(f"element {symbol!r} needs a number, e.g. {symbol}0", i)
        name = t[i:k]
        if name in self.seen:
            self.fail(f"element name {name!r} is used twice (first at column "
                      f"{self.seen[name] + 1}); give each element its own number", i)
        self.seen[name] = i
        etype = ELEMENT_TYPES[symbol]
        el = Element(name, etype, i + 1, self.n_params, self.n_params + etype.n_parameters)
        self.n_params = el.stop
        self.elements.append(el)
        self.pos = k
        return el

    def parse(self) -> Node:
        if not self.text.strip():
            self.fail("the circuit is empty; write e.g. R0-p(R1,CPE1)", 0)
        root = self.series()
        if self.peek():
            c = self.peek()
            hint = " (')' without 'p(')" if c == ")" else ""
            self.fail(f"unexpected {c!r}{hint}; elements are joined by '-' (series) "
                      "or listed in p(a,b,...) (parallel)")
        return root


class Circuit:
    """A parsed circuit: parameter names, units, bounds, Z(omega) and dZ/dtheta."""

    def __init__(self, text: str, *, file: str | None = None, line: int | None = None,
                 column_offset: int = 0):
        parser = _Parser(text, file, line, column_offset)
        self.text = text
        self.root: Node = parser.parse()
        self.elements: tuple[Element, ...] = tuple(parser.elements)
        self.n_parameters: int = parser.n_params

    def __repr__(self) -> str:
        return f"Circuit({self.text!r})"

    @property
    def parameter_names(self) -> list[str]:
        return [n for el in self.elements for n in el.parameter_names]

    @property
    def parameter_units(self) -> list[str]:
        return [u for el in self.elements for u in el.type.units]

    def default_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper): every parameter > 0, CPE alpha <= 1 (as impedance.py)."""
        upper = np.array([u for el in self.elements for u in el.type.upper], dtype=float)
        return np.zeros(self.n_parameters), upper

    def check_parameters(self, parameters: Sequence[float]) -> np.ndarray:
        p = np.asarray(parameters, dtype=float)
        if p.shape != (self.n_parameters,):
            raise ValidationError([Problem(None, None, None, "parameters",
                                           f"{self.text!r} takes {self.n_parameters} parameters "
                                           f"({', '.join(self.parameter_names)}), got {p.size}")])
        return p

    def impedance(self, frequency_hz: np.ndarray, parameters: Sequence[float]) -> np.ndarray:
        """Z (complex, Ohm) at each frequency."""
        p = self.check_parameters(parameters)
        return self._z(self.root, p, FrequencyGrid(np.atleast_1d(frequency_hz)))

    def impedance_and_jacobian(self, frequency_hz: np.ndarray, parameters: Sequence[float]
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Z (n,) and dZ/dtheta (n, n_parameters), both complex."""
        p = self.check_parameters(parameters)
        return self.evaluate(FrequencyGrid(np.atleast_1d(frequency_hz)), p)

    def evaluate(self, grid: FrequencyGrid, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Z and the Jacobian on a prepared grid (the fitter's inner loop; no checks)."""
        jac = np.empty((grid.omega.shape[0], self.n_parameters), dtype=complex)
        return self._zj(self.root, p, grid, jac), jac

    def _z(self, node: Node, p: np.ndarray, g: FrequencyGrid) -> np.ndarray:
        if isinstance(node, Element):
            return node.type.function(p[node.start:node.stop], g)[0]
        zs = [self._z(c, p, g) for c in node.children]
        if isinstance(node, Series):
            return sum(zs[1:], zs[0])
        return 1.0 / sum((1.0 / z for z in zs[1:]), 1.0 / zs[0])

    def _zj(self, node: Node, p: np.ndarray, g: FrequencyGrid, jac: np.ndarray) -> np.ndarray:
        if isinstance(node, Element):
            z, grads = node.type.function(p[node.start:node.stop], g)
            for k, d in enumerate(grads):
                jac[:, node.start + k] = d
            return z
        zs = [self._zj(c, p, g, jac) for c in node.children]
        if isinstance(node, Series):
            return sum(zs[1:], zs[0])
        z = 1.0 / sum((1.0 / zi for zi in zs[1:]), 1.0 / zs[0])
        for child, zi in zip(node.children, zs, strict=True):
            if child.stop > child.start:
                jac[:, child.start:child.stop] *= ((z / zi) ** 2)[:, None]
        return z


def parse_circuit(text: str, *, file: str | None = None, line: int | None = None,
                  column_offset: int = 0) -> Circuit:
    """Parse a circuit string; a mistake raises ValidationError naming the column.

    `file`, `line` and `column_offset` locate the string inside a user's file
    (e.g. a procedure) so the error points there.
    """
    return Circuit(text, file=file, line=line, column_offset=column_offset)


def top_level_parts(circuit: Circuit) -> tuple:
    """The nodes in series at the top of the circuit (one node if it is not a series)."""
    return circuit.root.children if isinstance(circuit.root, Series) else (circuit.root,)


def elements_in(node: Node) -> list[Element]:
    if isinstance(node, Element):
        return [node]
    return [e for c in node.children for e in elements_in(c)]
