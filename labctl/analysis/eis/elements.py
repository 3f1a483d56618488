"""Circuit elements: impedance and its analytic derivative for each parameter.

Each element's impedance is evaluated on a `FrequencyGrid` that precomputes what
every evaluation needs (j*omega, ln(j*omega), 1/sqrt(omega)), because a fit
evaluates the same grid hundreds of times. Formulas (omega = 2 pi f):

  R    Z = R
  C    Z = 1 / (j omega C)
  L    Z = j omega L
  CPE  Z = 1 / (Q (j omega)^alpha)                      params Q, alpha
  W    Z = A_W (1 - j) / sqrt(omega)                     semi-infinite Warburg
  Wo   Z = Z0 coth(s) / s,  s = sqrt(j omega tau)        finite length, open (reflective)
  Ws   Z = Z0 tanh(s) / s                                finite length, short (transmissive)

Parameter names and order follow impedance.py (`R0`, `CPE1_0`, `CPE1_1`, `Wo1_0`...),
so fitted values can be compared with it directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class FrequencyGrid:
    """Angular frequencies and the derived arrays every element needs."""

    __slots__ = ("frequency_hz", "omega", "jw", "log_jw", "warburg")

    def __init__(self, frequency_hz: np.ndarray):
        self.frequency_hz = np.asarray(frequency_hz, dtype=float)
        self.omega = 2.0 * np.pi * self.frequency_hz
        self.jw = 1j * self.omega
        self.log_jw = np.log(self.omega) + 0.5j * np.pi
        self.warburg = (1.0 - 1.0j) / np.sqrt(self.omega)


# An element function gets its parameter values and the grid, returns Z (n,) and
# dZ/dp for each parameter (list of (n,) complex arrays, or complex scalars that
# broadcast).
ElementFunction = Callable[[np.ndarray, FrequencyGrid], tuple[np.ndarray, list]]


def _resistor(p: np.ndarray, g: FrequencyGrid):
    n = g.omega.shape[0]
    return np.full(n, p[0], dtype=complex), [np.ones(n, dtype=complex)]


def _capacitor(p: np.ndarray, g: FrequencyGrid):
    z = 1.0 / (g.jw * p[0])
    return z, [-z / p[0]]


def _inductor(p: np.ndarray, g: FrequencyGrid):
    return g.jw * p[0], [g.jw]


def _cpe(p: np.ndarray, g: FrequencyGrid):
    q, alpha = p[0], p[1]
    z = np.exp(-alpha * g.log_jw) / q
    return z, [-z / q, -g.log_jw * z]


def _warburg(p: np.ndarray, g: FrequencyGrid):
    return p[0] * g.warburg, [g.warburg]


def _diffusion_terms(tau: float, g: FrequencyGrid):
    """s, e = exp(-2s) and em1 = 1 - exp(-2s), stable for large |s| (no sinh overflow)."""
    s = np.sqrt(g.jw * tau)
    e = np.exp(-2.0 * s)
    em1 = -np.expm1(-2.0 * s)
    return s, e, em1


def _warburg_open(p: np.ndarray, g: FrequencyGrid):
    z0, tau = p[0], p[1]
    s, e, em1 = _diffusion_terms(tau, g)
    coth = (1.0 + e) / em1
    base = coth / s
    csch2 = 4.0 * e / em1**2
    # d/dtau [coth(s)/s] with ds/dtau = s / (2 tau)
    return z0 * base, [base, z0 * (-csch2 - base) / (2.0 * tau)]


def _warburg_short(p: np.ndarray, g: FrequencyGrid):
    z0, tau = p[0], p[1]
    s, e, em1 = _diffusion_terms(tau, g)
    tanh = em1 / (1.0 + e)
    base = tanh / s
    sech2 = 4.0 * e / (1.0 + e) ** 2
    return z0 * base, [base, z0 * (sech2 - base) / (2.0 * tau)]


@dataclass(frozen=True)
class ElementType:
    symbol: str
    units: tuple[str, ...]
    function: ElementFunction
    description: str
    # Upper bound per parameter (lower bound is always 0: every parameter is positive).
    upper: tuple[float, ...]

    @property
    def n_parameters(self) -> int:
        return len(self.units)


ELEMENT_TYPES: dict[str, ElementType] = {
    e.symbol: e
    for e in (
        ElementType("R", ("Ohm",), _resistor, "resistor", (np.inf,)),
        ElementType("C", ("F",), _capacitor, "capacitor", (np.inf,)),
        ElementType("L", ("H",), _inductor, "inductor", (np.inf,)),
        ElementType("CPE", ("Ohm^-1 s^a", "1"), _cpe, "constant phase element (Q, alpha)",
                    (np.inf, 1.0)),
        ElementType("W", ("Ohm s^-1/2",), _warburg, "semi-infinite Warburg (A_W)", (np.inf,)),
        ElementType("Wo", ("Ohm", "s"), _warburg_open, "finite-length Warburg, open (Z0, tau)",
                    (np.inf, np.inf)),
        ElementType("Ws", ("Ohm", "s"), _warburg_short, "finite-length Warburg, short (Z0, tau)",
                    (np.inf, np.inf)),
    )
}

ALLOWED_ELEMENTS = ", ".join(ELEMENT_TYPES)
