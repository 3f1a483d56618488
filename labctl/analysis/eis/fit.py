"""Complex non-linear least squares fit of an equivalent circuit to a spectrum.

Residuals, stacked real then imaginary, are r = (Z_model - Z_data) / w with the
weights w:

- ``"modulus"`` (default): w = |Z_data| for both parts (as impedance.py's
  ``weight_by_modulus``); right when the noise is a fixed fraction of |Z|.
- ``"proportional"``: w = |Z'_data| for the real part and |Z''_data| for the
  imaginary part (Boukamp's proportional weighting), each floored at 1e-6 |Z|
  so a zero crossing does not divide by zero.
- ``"unit"``: w = 1 (residuals in Ohm).

**chi-square** (our definition, `chi_square`): the weighted sum of squared
residuals over both parts, chi2 = sum(r**2). It is dimensionless for modulus
and proportional weighting and in Ohm^2 for unit weighting. ``chi_square_reduced``
divides by the degrees of freedom 2N - P. (impedance.py reports no chi-square
from `CustomCircuit.fit`; compare by applying `chi_square` to its parameters.)

The optimiser is scipy's ``least_squares`` (trust region reflective, bounds)
with the analytic Jacobian, working on x = ln(theta): every parameter is
positive, the search is scale-free across 1e-12 F to 1e6 Ohm, and the bound
theta > 0 holds by construction. Standard errors come from the Jacobian at the
optimum, cov = s^2 (J^T J)^-1 with s^2 = chi2 / (2N - P).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from labctl.analysis.eis.arc_search import grid_starts
from labctl.analysis.eis.blas import single_threaded
from labctl.analysis.eis.circuit import Circuit, parse_circuit
from labctl.analysis.eis.elements import FrequencyGrid
from labctl.analysis.eis.guess import initial_guess
from labctl.analysis.eis.multistart import (
    IDENTIFIABLE_WITHIN,
    canonical_order,
    drt_start,
    identifiability,
    random_starts,
    search_bounds,
    structural_variants,
)
from labctl.errors import LabctlError, Problem, ValidationError

WEIGHTINGS = ("modulus", "proportional", "unit")

Bounds = tuple[Sequence[float], Sequence[float]] | Mapping[str, tuple[float, float]]
Initial = Sequence[float] | Mapping[str, float]


@dataclass(frozen=True)
class FitResult:
    """One fitted spectrum. Arrays are ordered as `parameter_names`."""

    circuit: str
    parameter_names: tuple[str, ...]
    parameter_units: tuple[str, ...]
    parameters: np.ndarray
    stderr: np.ndarray
    covariance: np.ndarray
    chi_square: float
    chi_square_reduced: float
    weighting: str
    frequency_hz: np.ndarray
    z_data: np.ndarray  # complex, Ohm
    z_fit: np.ndarray  # complex, Ohm
    initial: np.ndarray
    success: bool  # converged, finite (a parameter at a bound is not a failure)
    message: str
    n_evaluations: int = 0
    converged: bool = False  # optimizer's own criteria, or chi2 stagnation
    converged_by: str = ""  # "gtol", "ftol", "xtol", "ftol+xtol", "chi2 stagnation" or ""
    at_bound: np.ndarray | None = None  # per parameter: stopped at its (search) bound
    not_identifiable: np.ndarray | None = None  # per parameter: the data cannot tell
    n_starts: int = 1  # local fits tried (multi-start)

    def status(self) -> dict:
        """Per-fit status as stored and printed: converged, flags by parameter name."""
        names = self.parameter_names
        at_b = self.at_bound if self.at_bound is not None else np.zeros(len(names), bool)
        ni = (self.not_identifiable if self.not_identifiable is not None
              else np.zeros(len(names), bool))
        return {"converged": bool(self.converged), "converged_by": self.converged_by,
                "at_bound": [n for n, b in zip(names, at_b, strict=True) if b],
                "not_identifiable": [n for n, b in zip(names, ni, strict=True) if b],
                "n_starts": int(self.n_starts)}

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.parameter_names, map(float, self.parameters), strict=True))

    def stderr_dict(self) -> dict[str, float]:
        return dict(zip(self.parameter_names, map(float, self.stderr), strict=True))

    @property
    def residual_real_pct(self) -> np.ndarray:
        """100 (Z'_data - Z'_fit) / |Z_data|, as Lin-KK reports its residuals."""
        return 100.0 * (self.z_data.real - self.z_fit.real) / np.abs(self.z_data)

    @property
    def residual_imag_pct(self) -> np.ndarray:
        """100 (Z''_data - Z''_fit) / |Z_data|."""
        return 100.0 * (self.z_data.imag - self.z_fit.imag) / np.abs(self.z_data)


def weights(z_data: np.ndarray, weighting: str = "modulus") -> tuple[np.ndarray, np.ndarray]:
    """(w_real, w_imag) dividing the real and imaginary residuals."""
    z = np.asarray(z_data, dtype=complex)
    mod = np.abs(z)
    if weighting == "modulus":
        return mod, mod
    if weighting == "proportional":
        floor = 1e-6 * mod
        return np.maximum(np.abs(z.real), floor), np.maximum(np.abs(z.imag), floor)
    if weighting == "unit":
        one = np.ones_like(mod)
        return one, one
    raise LabctlError(f"weighting {weighting!r} is not known; use one of {', '.join(WEIGHTINGS)}")


def chi_square(z_data: np.ndarray, z_model: np.ndarray, weighting: str = "modulus") -> float:
    """sum(((Z'_m - Z'_d)/w_re)^2 + ((Z''_m - Z''_d)/w_im)^2): the fit's objective."""
    w_re, w_im = weights(z_data, weighting)
    d = np.asarray(z_model, dtype=complex) - np.asarray(z_data, dtype=complex)
    return float(np.sum((d.real / w_re) ** 2) + np.sum((d.imag / w_im) ** 2))


def _as_complex(z=None, z_real_ohm=None, z_imag_ohm=None) -> np.ndarray:
    if z is not None:
        return np.asarray(z, dtype=complex)
    return np.asarray(z_real_ohm, dtype=float) + 1j * np.asarray(z_imag_ohm, dtype=float)


def _check_spectrum(frequency_hz, z) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(frequency_hz, dtype=float).ravel()
    z = np.asarray(z, dtype=complex).ravel()
    problems = []
    if f.shape != z.shape:
        problems.append(f"{f.size} frequencies but {z.size} impedances")
    elif not (np.all(np.isfinite(f)) and np.all(np.isfinite(z))):
        problems.append("NaN or infinite values; remove those points")
    elif np.any(f <= 0):
        problems.append("frequencies must be > 0 Hz")
    elif np.any(z == 0):
        problems.append("Z = 0 at some frequency; such a point cannot be weighted")
    if problems:
        raise ValidationError([Problem(None, None, None, "spectrum", problems[0])])
    return f, z


def _vector(circuit: Circuit, values, default: np.ndarray, what: str) -> np.ndarray:
    """Parameters from a full sequence or a {name: value} mapping over `default`."""
    if values is None:
        return default.copy()
    names = circuit.parameter_names
    if isinstance(values, Mapping):
        out = default.copy()
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValidationError([Problem(None, None, None, what,
                                           f"unknown parameter(s) {', '.join(unknown)}; "
                                           f"{circuit.text!r} has {', '.join(names)}")])
        for k, v in values.items():
            out[names.index(k)] = v
        return out
    return circuit.check_parameters(values).copy()


def _log_bounds(circuit: Circuit, bounds) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = circuit.default_bounds()
    if isinstance(bounds, Mapping):
        unknown = [k for k in bounds if k not in circuit.parameter_names]
        if unknown:
            raise ValidationError([Problem(None, None, None, "bounds",
                                           f"unknown parameter(s) {', '.join(unknown)}; "
                                           f"{circuit.text!r} has "
                                           f"{', '.join(circuit.parameter_names)}")])
        for k, (a, b) in bounds.items():
            i = circuit.parameter_names.index(k)
            lo[i], hi[i] = a, b
    elif bounds is not None:
        lo = circuit.check_parameters(bounds[0]).copy()
        hi = circuit.check_parameters(bounds[1]).copy()
    if np.any(hi <= lo) or np.any(hi <= 0):
        raise LabctlError("fit bounds: every upper bound must be > 0 and above its lower bound")
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(lo, 0.0)), np.log(hi)


class _Objective:
    """The residual function and its Jacobian in x = ln(theta), for least_squares."""

    def __init__(self, circuit: Circuit, f: np.ndarray, z: np.ndarray, weighting: str):
        self.circuit = circuit
        self.grid = FrequencyGrid(f)
        self.z = z
        w_re, w_im = weights(z, weighting)
        self.inv_w = np.concatenate([1.0 / w_re, 1.0 / w_im])
        self.target = np.concatenate([z.real, z.imag]) * self.inv_w
        self._x = None
        self._zj = None
        self.history: list[float] = []  # cost of every residual evaluation

    def _eval(self, x: np.ndarray):
        # least_squares asks for fun and jac at the same x; evaluate once.
        if self._x is None or not np.array_equal(x, self._x):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._zj = self.circuit.evaluate(self.grid, np.exp(x))
            self._x = x.copy()
        return self._zj

    def residuals(self, x: np.ndarray) -> np.ndarray:
        z, _ = self._eval(x)
        r = np.concatenate([z.real, z.imag]) * self.inv_w - self.target
        r = np.where(np.isfinite(r), r, 1e100)  # squares stay finite
        self.history.append(float(r @ r))
        return r

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        _, jac = self._eval(x)
        j = np.vstack([jac.real, jac.imag]) * self.inv_w[:, None] * np.exp(x)[None, :]
        return np.where(np.isfinite(j), j, 0.0)

    def cost(self, theta: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            r = self.residuals(np.log(theta))
        return float(r @ r)


def _covariance(jac_log: np.ndarray, theta: np.ndarray, s2: float) -> np.ndarray:
    """s^2 (J^T J)^-1 in theta units, by SVD.

    A parameter the data do not determine (a zero singular value whose direction
    involves it) gets an infinite variance; the others keep finite ones.
    """
    n = len(theta)
    if not np.all(np.isfinite(jac_log)) or not np.isfinite(s2):
        return np.full((n, n), np.nan)
    _, sv, vt = np.linalg.svd(jac_log, full_matrices=False)
    tol = sv.max() * max(jac_log.shape) * np.finfo(float).eps if sv.size else 0.0
    ok = sv > tol
    cov_log = (vt[ok].T / sv[ok] ** 2) @ vt[ok]
    undetermined = np.any(np.abs(vt[~ok]) > 1e-8, axis=0) if np.any(~ok) else np.zeros(n, bool)
    cov = s2 * cov_log * np.outer(theta, theta)
    cov[undetermined, :] = np.nan
    cov[:, undetermined] = np.nan
    cov[undetermined, undetermined] = np.inf
    return cov


_STATUS = {1: "gtol", 2: "ftol", 3: "xtol", 4: "ftol+xtol"}
STAGNATION_EVALUATIONS = 20
STAGNATION_RELATIVE = 1e-8


def _solve(problem: _Objective, circuit: Circuit, x0_theta: np.ndarray, lb, ub,
           weighting: str, max_nfev: int | None, quick: bool = False) -> FitResult:
    """One local fit. `quick`: loose tolerances and few evaluations (a multi-start probe)."""
    # A start exactly on a bound (e.g. alpha = 1) must be moved strictly inside.
    x0 = np.clip(np.log(x0_theta), lb + 1e-10, ub - 1e-10)
    x0 = np.where(np.isfinite(x0), x0, 0.5 * (np.maximum(lb, -50) + np.minimum(ub, 50)))
    tol = dict(ftol=1e-6, xtol=1e-6, gtol=1e-8, max_nfev=30) if quick else dict(
        ftol=1e-12, xtol=1e-10, gtol=1e-10, max_nfev=max_nfev)
    problem.history = []
    # Far from the optimum a trial step can overflow; the residual function
    # reports that as a huge cost, so numpy's warnings would only be noise.
    with np.errstate(all="ignore"):
        sol = least_squares(problem.residuals, x0, jac=problem.jacobian, bounds=(lb, ub),
                            method="trf", x_scale=1.0, **tol)
        theta = np.exp(sol.x)
        z_fit, _ = problem._eval(sol.x)
        chi2 = float(sol.fun @ sol.fun)
        n_obs, n_par = 2 * len(problem.z), circuit.n_parameters
        dof = n_obs - n_par
        s2 = chi2 / dof if dof > 0 else np.nan
        cov = _covariance(sol.jac, theta, s2)
        stderr = np.sqrt(np.diag(cov))
    finite = bool(np.all(np.isfinite(theta)) and np.isfinite(chi2))
    converged_by = _STATUS.get(int(sol.status), "")
    if not converged_by and _stagnated(problem.history):
        converged_by = "chi2 stagnation"
    converged = bool(converged_by) and finite
    span = np.where(np.isfinite(ub - lb), ub - lb, 1.0)
    at_bound = ((np.isfinite(lb) & (sol.x - lb <= 1e-6 * np.maximum(span, 1.0)))
                | (np.isfinite(ub) & (ub - sol.x <= 1e-6 * np.maximum(span, 1.0))))
    return FitResult(
        circuit=circuit.text,
        parameter_names=tuple(circuit.parameter_names),
        parameter_units=tuple(circuit.parameter_units),
        parameters=theta,
        stderr=stderr,
        covariance=cov,
        chi_square=chi2,
        chi_square_reduced=s2,
        weighting=weighting,
        frequency_hz=problem.grid.frequency_hz,
        z_data=problem.z,
        z_fit=z_fit.copy(),
        initial=np.asarray(x0_theta, dtype=float),
        success=converged,
        message=str(sol.message) if converged_by != "chi2 stagnation" else
        f"chi2 stagnated (changed < {STAGNATION_RELATIVE:g} relative over the last "
        f"{STAGNATION_EVALUATIONS} evaluations); optimizer: {sol.message}",
        n_evaluations=int(sol.nfev),
        converged=converged,
        converged_by=converged_by,
        at_bound=at_bound,
        not_identifiable=np.zeros(n_par, dtype=bool),
    )


def _stagnated(history: list[float]) -> bool:
    """The best chi2 no longer improves: converged for practical purposes even if
    the optimizer ran out of evaluations (e.g. a parameter creeping along a bound)."""
    if len(history) <= STAGNATION_EVALUATIONS:
        return False
    best = np.minimum.accumulate(np.asarray(history))
    before, now = best[-STAGNATION_EVALUATIONS - 1], best[-1]
    return bool(np.isfinite(now) and before - now <= STAGNATION_RELATIVE * max(now, 1e-300))


def _setup(frequency_hz, z, circuit, bounds, weighting):
    if weighting not in WEIGHTINGS:
        raise LabctlError(f"weighting {weighting!r} is not known; use one of "
                          f"{', '.join(WEIGHTINGS)}")
    c = circuit if isinstance(circuit, Circuit) else parse_circuit(circuit)
    f, zz = _check_spectrum(frequency_hz, z)
    if 2 * len(f) < c.n_parameters:
        raise LabctlError(f"{len(f)} points cannot determine the {c.n_parameters} parameters "
                          f"of {c.text!r}")
    lb, ub = search_bounds(c, f, zz, *_log_bounds(c, bounds))
    return c, f, zz, lb, ub


def _start(c: Circuit, f, z, initial, lb, ub) -> np.ndarray:
    auto = initial_guess(c, f, z)
    x0 = _vector(c, initial, auto, "initial")
    if np.any(~np.isfinite(x0)) or np.any(x0 <= 0):
        raise LabctlError(f"initial values must be finite and > 0, got {list(x0)}")
    return np.exp(np.clip(np.log(x0), lb, ub))


DEFAULT_RANDOM_STARTS = 32
FITTED_RANDOM_STARTS = 3
POLISHED = 2


def _robust(problem: _Objective, c: Circuit, f, zz, lb, ub, weighting: str,
            max_nfev: int | None, starts: list[np.ndarray], n_random: int,
            seed: int, reference: np.ndarray | None = None,
            identifiable_within: float = IDENTIFIABLE_WITHIN) -> FitResult:
    """Multi-start fit (see `multistart`): probe every start with a quick local fit,
    polish the best, put interchangeable arcs in canonical order, flag parameters."""
    clip = [np.exp(np.clip(np.log(np.maximum(v, 1e-300)), lb, ub)) for v in starts]
    auto = clip[-1]
    from_drt = drt_start(c, auto, f, zz)
    if from_drt is not None:
        clip.append(np.exp(np.clip(np.log(np.maximum(from_drt, 1e-300)), lb, ub)))
    clip += structural_variants(c, auto, f)
    grid = grid_starts(c, auto, f, zz)
    clip += [np.exp(np.clip(np.log(np.maximum(v, 1e-300)), lb, ub)) for v in grid]
    # The arc-placement grid is the global search where it applies (series R, simple
    # arcs, one tail); the random search covers the other topologies. On 600 benchmark
    # spectra the random starts never improved on the grid's, at a quarter of the time.
    if n_random > 0 and not grid:
        rnd = random_starts(c, auto, f, zz, lb, ub, n_random, np.random.default_rng(seed))
        costs = [problem.cost(v) for v in rnd]
        clip += [rnd[i] for i in np.argsort(costs)[:FITTED_RANDOM_STARTS]]
    probes = [_solve(problem, c, v, lb, ub, weighting, max_nfev, quick=True) for v in clip]
    probes.sort(key=lambda r: r.chi_square if np.isfinite(r.chi_square) else np.inf)
    polished = [_solve(problem, c, r.parameters, lb, ub, weighting, max_nfev)
                for r in probes[:POLISHED]]
    best = min(polished, key=lambda r: r.chi_square if np.isfinite(r.chi_square) else np.inf)
    ordered = canonical_order(c, best.parameters, reference)
    if not np.array_equal(ordered, best.parameters):  # re-evaluate in the canonical order
        best = _solve(problem, c, ordered, lb, ub, weighting, max_nfev)
    dof = 2 * len(f) - c.n_parameters
    others = [(r.chi_square, canonical_order(c, r.parameters, reference))
              for r in polished + probes
              if r is not best and np.isfinite(r.chi_square)]
    flags = identifiability(best.parameters, best.stderr, best.chi_square, dof, others,
                            identifiable_within)
    return replace(best, not_identifiable=flags, n_starts=len(clip),
                   initial=np.asarray(starts[0], dtype=float))


@single_threaded
def fit_spectrum(frequency_hz: np.ndarray, z: np.ndarray, circuit: str | Circuit, *,
                 initial: Initial | None = None, bounds: Bounds | None = None,
                 weighting: str = "modulus", max_nfev: int | None = None,
                 multistart: bool = True, n_random: int = DEFAULT_RANDOM_STARTS,
                 seed: int = 0, identifiable_within: float = IDENTIFIABLE_WITHIN
                 ) -> FitResult:
    """Fit `circuit` to one spectrum (z complex, Ohm; Z = Z' + j Z'').

    `initial`: all parameters in order, or {name: value} to override some of the
    automatic guesses. `bounds`: (lower, upper) sequences or {name: (lo, hi)} in
    parameter units; default 0 < theta, CPE alpha <= 1 (searched within the
    finite box of `multistart.search_bounds`).

    `multistart` (default): the given/automatic start, its structural variants,
    the best placements of the arc-placement grid (`arc_search`; where it does not
    apply, the best of `n_random` seeded random points) are each fitted and the
    lowest chi2 kept (module `multistart`). `multistart=False`: one local fit from
    `initial` (or the automatic guess), as fast as possible.

    `identifiable_within`: a parameter is flagged `not_identifiable` when the data
    do not determine it to within this share of its value (two standard errors, or
    an equally good other minimum; default 0.5, i.e. relative stderr > 25 %).
    """
    _check_within(identifiable_within)
    c, f, zz, lb, ub = _setup(frequency_hz, z, circuit, bounds, weighting)
    problem = _Objective(c, f, zz, weighting)
    x0 = _start(c, f, zz, initial, lb, ub)
    if not multistart:
        res = _solve(problem, c, x0, lb, ub, weighting, max_nfev)
        dof = 2 * len(f) - c.n_parameters
        return replace(res, not_identifiable=identifiability(
            res.parameters, res.stderr, res.chi_square, dof, [], identifiable_within))
    starts = [x0] if initial is None else [x0, _start(c, f, zz, None, lb, ub)]
    return _robust(problem, c, f, zz, lb, ub, weighting, max_nfev, starts, n_random, seed,
                   reference=None if initial is None else x0,
                   identifiable_within=identifiable_within)


def _check_within(value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise LabctlError(f"identifiable_within must be a positive share (e.g. 0.05 for 5 %), "
                          f"got {value!r}")


@single_threaded
def fit_many(spectra: Sequence, circuit: str | Circuit, *, warm_start: bool = True,
             check_guess: bool = True, initial: Initial | None = None,
             bounds: Bounds | None = None, weighting: str = "modulus",
             max_nfev: int | None = None, multistart: bool = True,
             n_random: int = DEFAULT_RANDOM_STARTS,
             identifiable_within: float = IDENTIFIABLE_WITHIN) -> list[FitResult]:
    """Fit many spectra (objects with frequency_hz, z_real_ohm, z_imag_ohm, or
    (frequency_hz, z) pairs) with the same circuit.

    With `multistart` (default) every spectrum gets the multi-start fit of
    `fit_spectrum`; with `warm_start` the previous converged result is one more
    start. Without `multistart`: each fit starts from the previous converged
    result (`warm_start`) and, with `check_guess`, also from the automatic guess
    when that starts lower or the warm fit ends above it, keeping the better;
    `check_guess=False` is fastest for slowly changing series: the guess is then
    only tried when the warm fit fails or ends with a chi-square more than twice
    the previous one.
    """
    _check_within(identifiable_within)
    c = circuit if isinstance(circuit, Circuit) else parse_circuit(circuit)
    results: list[FitResult] = []
    previous: FitResult | None = None
    for k, s in enumerate(spectra):
        f, z = spectrum_arrays(s)
        c, f, zz, lb, ub = _setup(f, z, c, bounds, weighting)
        problem = _Objective(c, f, zz, weighting)
        if multistart:
            starts = [_start(c, f, zz, initial, lb, ub)]
            if warm_start and previous is not None:
                starts.insert(0, previous.parameters)
            res = _robust(problem, c, f, zz, lb, ub, weighting, max_nfev, starts, n_random,
                          seed=k, reference=None if initial is None else starts[-1],
                          identifiable_within=identifiable_within)
        elif not warm_start or previous is None:
            res = _solve(problem, c, _start(c, f, zz, initial, lb, ub), lb, ub, weighting,
                         max_nfev)
        elif check_guess:
            auto = _start(c, f, zz, initial, lb, ub)
            warm = previous.parameters
            auto_cost, warm_cost = problem.cost(auto), problem.cost(warm)
            res = _solve(problem, c, warm if warm_cost <= auto_cost else auto, lb, ub,
                         weighting, max_nfev)
            if warm_cost <= auto_cost and (auto_cost < res.chi_square or not res.success):
                res = _better(res, _solve(problem, c, auto, lb, ub, weighting, max_nfev))
        else:
            res = _solve(problem, c, previous.parameters, lb, ub, weighting, max_nfev)
            if not res.success or res.chi_square > 2.0 * previous.chi_square:
                auto = _start(c, f, zz, initial, lb, ub)
                res = _better(res, _solve(problem, c, auto, lb, ub, weighting, max_nfev))
        if not multistart:
            dof = 2 * len(f) - c.n_parameters
            res = replace(res, not_identifiable=identifiability(
                res.parameters, res.stderr, res.chi_square, dof, [], identifiable_within))
        if res.success:
            previous = res
        results.append(res)
    return results


def _better(a: FitResult, b: FitResult) -> FitResult:
    if a.success != b.success:
        return a if a.success else b
    return b if b.chi_square < a.chi_square else a


def spectrum_arrays(spectrum: object) -> tuple[np.ndarray, np.ndarray]:
    """(frequency_hz, complex Z) from a Spectrum-like object or a (f, z) pair."""
    if hasattr(spectrum, "frequency_hz"):
        return (np.asarray(spectrum.frequency_hz, dtype=float),
                _as_complex(z_real_ohm=spectrum.z_real_ohm, z_imag_ohm=spectrum.z_imag_ohm))
    f, z = spectrum
    return np.asarray(f, dtype=float), np.asarray(z, dtype=complex)
