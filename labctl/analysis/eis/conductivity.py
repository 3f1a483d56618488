"""Ionic conductivity of a solid-electrolyte pellet from fitted arcs, and its Arrhenius fit.

sigma = L / (R A) with the pellet thickness L and electrode area A; labs report
S/cm, so thickness is taken in mm and area in cm^2 (L_cm = thickness_mm / 10).

- bulk (grain) conductivity from the bulk arc's resistance R_b;
- total (overall) conductivity from R_b + R_gb (grain-boundary arc).

Which resistor is which: by default the arcs are the circuit's top-level
parallel blocks holding one R and one C or CPE, ordered by their time constant
tau = R C or (R Q)^(1/alpha); the fastest (highest-frequency) arc is the bulk,
the next one the grain boundary. Name them explicitly (`bulk="R1"`,
`grain_boundary="R2"`) when the circuit has other arcs (e.g. charge transfer).
Standard errors come from the fit's covariance (including the R_b-R_gb covariance
for the total).

Arrhenius: sigma T = A exp(-Ea / (k_B T)) (``form="sigma_t"``, the default,
the form that follows from hopping conduction and the one most pellet papers
use) or sigma = A exp(-Ea / (k_B T)) (``form="sigma"``): an ordinary least-
squares line of ln(sigma T) (or ln sigma) against 1/(k_B T). Ea (eV) is minus
the slope; its standard error is the slope's, from the residual scatter
(needs three or more temperatures; NaN with two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labctl.analysis.eis.circuit import Element, Parallel, parse_circuit, top_level_parts
from labctl.analysis.eis.fit import FitResult
from labctl.errors import LabctlError

BOLTZMANN_EV_PER_K = 8.617333262e-5  # CODATA 2018
ZERO_C_IN_K = 273.15
ARRHENIUS_FORMS = ("sigma_t", "sigma")


def conductivity_s_per_cm(resistance_ohm: float | np.ndarray, thickness_mm: float,
                          area_cm2: float) -> float | np.ndarray:
    """sigma = L / (R A) in S/cm."""
    _check_geometry(thickness_mm, area_cm2)
    return (thickness_mm / 10.0) / (np.asarray(resistance_ohm, dtype=float) * area_cm2)


def _check_geometry(thickness_mm, area_cm2):
    for name, v in (("thickness_mm", thickness_mm), ("area_cm2", area_cm2)):
        if v is None or not np.isfinite(v) or v <= 0:
            raise LabctlError(f"{name} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class Arc:
    resistor: str  # parameter name of its R, e.g. "R1"
    time_constant_s: float


def arcs(fit: FitResult) -> list[Arc]:
    """Top-level R||C and R||CPE arcs of the fitted circuit, fastest first."""
    circuit = parse_circuit(fit.circuit)
    p = fit.as_dict()
    out = []
    for node in top_level_parts(circuit):
        if not isinstance(node, Parallel) or len(node.children) != 2:
            continue
        if not all(isinstance(c, Element) for c in node.children):
            continue
        kinds = {c.kind: c for c in node.children}
        r = kinds.get("R")
        cap = kinds.get("C") or kinds.get("CPE")
        if r is None or cap is None:
            continue
        rv = p[r.name]
        with np.errstate(all="ignore"):
            if cap.kind == "C":
                tau = rv * p[cap.name]
            else:
                alpha = p[f"{cap.name}_1"]
                tau = (rv * p[f"{cap.name}_0"]) ** (1.0 / alpha) if alpha > 0 else math.nan
        out.append(Arc(r.name, float(tau)))
    # An arc whose time constant is undefined (a degenerate fit) sorts last.
    return sorted(out, key=lambda a: (not np.isfinite(a.time_constant_s), a.time_constant_s))


@dataclass(frozen=True)
class PelletConductivity:
    bulk_resistor: str
    grain_boundary_resistor: str | None
    r_bulk_ohm: float
    r_bulk_stderr_ohm: float
    r_grain_boundary_ohm: float  # NaN without a grain-boundary arc
    r_grain_boundary_stderr_ohm: float
    r_total_ohm: float
    r_total_stderr_ohm: float
    sigma_bulk_s_per_cm: float
    sigma_bulk_stderr_s_per_cm: float
    sigma_total_s_per_cm: float
    sigma_total_stderr_s_per_cm: float
    thickness_mm: float
    area_cm2: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def pellet_conductivity(fit: FitResult, *, thickness_mm: float, area_cm2: float,
                        bulk: str | None = None, grain_boundary: str | None = None
                        ) -> PelletConductivity:
    """Bulk and total conductivity (S/cm) from a fitted pellet spectrum."""
    _check_geometry(thickness_mm, area_cm2)
    names = list(fit.parameter_names)
    if bulk is None:
        found = arcs(fit)
        if not found:
            raise LabctlError(f"{fit.circuit!r} has no top-level R||C or R||CPE arc to take "
                              "the bulk resistance from; name it with bulk='R1'")
        bulk = found[0].resistor
        if grain_boundary is None and len(found) > 1:
            grain_boundary = found[1].resistor
    for n in (bulk, grain_boundary):
        if n is not None and (n not in names or not n.startswith("R")):
            raise LabctlError(f"{n!r} is not a resistor of {fit.circuit!r} "
                              f"(parameters: {', '.join(names)})")
    ib = names.index(bulk)
    rb, var_b = float(fit.parameters[ib]), float(fit.covariance[ib, ib])
    if grain_boundary is not None:
        ig = names.index(grain_boundary)
        rg, var_g = float(fit.parameters[ig]), float(fit.covariance[ig, ig])
        var_t = var_b + var_g + 2.0 * float(fit.covariance[ib, ig])
    else:
        rg, var_g, var_t = math.nan, math.nan, var_b
    rt = rb + (0.0 if grain_boundary is None else rg)
    k = (thickness_mm / 10.0) / area_cm2  # cell constant, 1/cm
    se_b, se_t = math.sqrt(max(var_b, 0.0)), math.sqrt(max(var_t, 0.0))
    return PelletConductivity(
        bulk_resistor=bulk, grain_boundary_resistor=grain_boundary,
        r_bulk_ohm=rb, r_bulk_stderr_ohm=se_b,
        r_grain_boundary_ohm=rg, r_grain_boundary_stderr_ohm=math.sqrt(var_g)
        if np.isfinite(var_g) and var_g >= 0 else math.nan,
        r_total_ohm=rt, r_total_stderr_ohm=se_t,
        sigma_bulk_s_per_cm=k / rb, sigma_bulk_stderr_s_per_cm=k / rb**2 * se_b,
        sigma_total_s_per_cm=k / rt, sigma_total_stderr_s_per_cm=k / rt**2 * se_t,
        thickness_mm=float(thickness_mm), area_cm2=float(area_cm2),
    )


@dataclass(frozen=True)
class ArrheniusResult:
    form: str  # "sigma_t" or "sigma"
    activation_energy_ev: float
    activation_energy_stderr_ev: float
    prefactor: float  # S K/cm for sigma_t, S/cm for sigma
    prefactor_unit: str
    ln_prefactor_stderr: float  # standard error of ln(prefactor)
    n_temperatures: int

    def sigma_s_per_cm(self, temperature_c: float | np.ndarray) -> np.ndarray:
        """The fitted line, as conductivity (S/cm) at the given temperatures (°C)."""
        t = np.asarray(temperature_c, dtype=float) + ZERO_C_IN_K
        s = self.prefactor * np.exp(-self.activation_energy_ev / (BOLTZMANN_EV_PER_K * t))
        return s / t if self.form == "sigma_t" else s


def arrhenius_fit(temperature_c: Sequence[float] | np.ndarray,
                  sigma_s_per_cm: Sequence[float] | np.ndarray, *,
                  form: str = "sigma_t") -> ArrheniusResult:
    """Activation energy (eV) of conductivity measured at several temperatures (°C)."""
    if form not in ARRHENIUS_FORMS:
        raise LabctlError(f"Arrhenius form {form!r} is not known; use 'sigma_t' (sigma T vs "
                          "1/T) or 'sigma' (sigma vs 1/T)")
    t_k = np.asarray(temperature_c, dtype=float).ravel() + ZERO_C_IN_K
    sigma = np.asarray(sigma_s_per_cm, dtype=float).ravel()
    if t_k.shape != sigma.shape:
        raise LabctlError(f"{t_k.size} temperatures but {sigma.size} conductivities")
    ok = np.isfinite(t_k) & np.isfinite(sigma) & (sigma > 0) & (t_k > 0)
    if len(np.unique(t_k[ok])) < 2:
        raise LabctlError("Arrhenius fit needs positive conductivities at two or more "
                          "different temperatures")
    x = 1.0 / (BOLTZMANN_EV_PER_K * t_k[ok])
    y = np.log(sigma[ok] * t_k[ok]) if form == "sigma_t" else np.log(sigma[ok])
    n = int(ok.sum())
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * xm)
    if n > 2:
        s2 = float(((y - intercept - slope * x) ** 2).sum()) / (n - 2)
        se_slope = math.sqrt(s2 / sxx)
        se_intercept = math.sqrt(s2 * (1.0 / n + xm**2 / sxx))
    else:
        se_slope = se_intercept = math.nan
    return ArrheniusResult(
        form=form, activation_energy_ev=-slope, activation_energy_stderr_ev=se_slope,
        prefactor=math.exp(intercept),
        prefactor_unit="S K/cm" if form == "sigma_t" else "S/cm",
        ln_prefactor_stderr=se_intercept, n_temperatures=len(np.unique(t_k[ok])),
    )

