"""Global search over the arcs' time constants: starts that place every arc anywhere.

The DRT-based guess finds the arcs where the spectrum shows peaks. An arc whose
apex sits at the low-frequency edge, merged with a blocking-electrode CPE tail
(a pellet's grain boundary near 0.1 Hz), shows no peak of its own; the local fit
then puts both arcs at high frequency and lets the tail CPE absorb the slow arc,
a minimum with a clearly higher chi2 than the true one (bench/eis_robust.py).

For circuits whose top level is series resistors, simple arcs (``p(R,CPE)``,
``p(R,C)``) and at most one CPE or C tail, the spectrum is linear in the
resistances and the tail's 1/Q once the arcs' time constants and exponents are
fixed:

    Z = R_s + sum_k R_k / (1 + (j omega tau_k)^alpha_k) + (1/Q) (j omega)^-alpha_t

so a combination of time constants and exponents is solved by linear least squares
(rows weighted 1/|Z|; a combination needing a negative amplitude is discarded).
Stage 1: every placement of the time constants on a grid (3 per decade from
0.3/omega_max to 3/omega_min, in increasing order) with exponent 0.8 (1 for an
R||C) and tail exponents from the low-frequency slope, 0.65 and 0.9. Stage 2: for
the placements stage 1 picks, every arc exponent in 0.6..1 (steps of 0.1). The
starts are the best combination overall, the best whose slowest arc lies in each of
the last decades (tau omega_min in [0.01, 0.1), [0.1, 1), [1, 3]) and the best with
the fastest arc above f_max. All combinations are solved at once from one Gram
matrix of the basis shapes (nothing of the spectrum's size per combination): about
4-8 ms for two arcs and a tail on 71 points.
"""

from __future__ import annotations

import itertools

import numpy as np

from labctl.analysis.eis.circuit import Circuit, Element, Parallel, top_level_parts
from labctl.analysis.eis.multistart import set_arc

PER_DECADE = 3
ARC_ALPHAS = (0.6, 0.7, 0.8, 0.9, 1.0)
MAX_ARCS = 3
MAX_PLACEMENTS = 5000  # time-constant placements (about 3 arcs)
N_FAST = 1  # placements of the fastest arc above f_max


def _layout(circuit: Circuit):
    """(series R elements, arcs, tail element or None), or None if not of this form."""
    series, arcs, tails = [], [], []
    for part in top_level_parts(circuit):
        if isinstance(part, Element) and part.kind == "R":
            series.append(part)
        elif isinstance(part, Element) and part.kind in ("CPE", "C"):
            tails.append(part)
        elif isinstance(part, Parallel) and len(part.children) == 2 and all(
                isinstance(c, Element) for c in part.children) and sorted(
                c.kind for c in part.children) in (["CPE", "R"], ["C", "R"]):
            arcs.append(part)
        else:
            return None
    if not arcs or len(arcs) > MAX_ARCS or len(tails) > 1:
        return None
    return series, arcs, (tails[0] if tails else None)


def _tail_alphas(omega: np.ndarray, z: np.ndarray) -> tuple[float, ...]:
    """The low-frequency slope of log|Z''|, and 0.65 and 0.9 besides: an arc at the
    low-frequency edge bends the slope, so it alone can be far off."""
    fixed = (0.65, 0.9)
    order = np.argsort(omega)[:6]
    y = np.abs(z.imag[order])
    if np.count_nonzero(y > 0) < 3:
        return fixed
    ok = y > 0
    slope = float(np.clip(-np.polyfit(np.log(omega[order][ok]), np.log(y[ok]), 1)[0], 0.5, 1.0))
    return (slope,) + tuple(a for a in fixed if abs(a - slope) >= 0.05)


def grid_starts(circuit: Circuit, p0: np.ndarray, f: np.ndarray, z: np.ndarray
                ) -> list[np.ndarray]:
    """Up to 4 + N_FAST starting vectors (module docstring); [] for other
    topologies."""
    layout = _layout(circuit)
    if layout is None:
        return []
    series, arcs, tail = layout
    omega = 2.0 * np.pi * np.asarray(f, dtype=float)
    mod = np.abs(z)
    taus = np.logspace(np.log10(0.3 / omega.max()), np.log10(3.0 / omega.min()),
                       int(PER_DECADE * np.log10(10.0 * omega.max() / omega.min())) + 1)
    alphas = np.array(sorted(set(ARC_ALPHAS) | {1.0}))
    arc_alphas = [np.flatnonzero(np.isin(alphas, ARC_ALPHAS if _arc_has_cpe(a) else (1.0,)))
                  for a in arcs]
    tail_alphas = ((1.0,) if tail is not None and tail.kind == "C"
                   else _tail_alphas(omega, z) if tail is not None else ())
    # Arcs of one make-up are interchangeable (increasing tau in writing order is
    # enough); different ones (an R||C and an R||CPE) may come in either order.
    same = len({tuple(sorted(c.kind for c in a.children)) for a in arcs}) == 1
    pick = itertools.combinations if same else itertools.permutations
    tau_sets = np.array(list(pick(range(len(taus)), len(arcs))), dtype=int)
    if len(tau_sets) > MAX_PLACEMENTS:
        return []
    alpha_sets = np.array(list(itertools.product(*arc_alphas)), dtype=int)
    solver = _Combinations(omega, z, bool(series), taus, alphas, tail_alphas)
    # Stage 1: every placement of the time constants with one exponent (0.8; 1 for
    # an R||C) picks the candidate placements; stage 2 scans the exponents there.
    middle = np.array([a[np.argmin(np.abs(alphas[a] - 0.8))] for a in arc_alphas])[None, :]
    cost, _, _, combo_tau = solver.solve(tau_sets, middle)
    chosen = _picks(cost, combo_tau, taus, omega, n_fast=None)
    cost, amps, idx, combo_tau = solver.solve(np.unique(combo_tau[chosen], axis=0), alpha_sets)
    out: list[np.ndarray] = []
    seen: set[tuple[int, ...]] = set()
    off = int(bool(series))
    for c in _picks(cost, combo_tau, taus, omega):
        key = tuple(combo_tau[c])
        if not np.isfinite(cost[c]) or key in seen:  # distinct placements only
            continue
        seen.add(key)
        cols = idx[c]
        arc_a = alphas[(cols[off:off + len(arcs)] - off) % len(alphas)]
        tail_a = (tail_alphas[cols[-1] - off - len(taus) * len(alphas)]
                  if tail_alphas else None)
        out.append(_vector(p0, series, arcs, tail, taus, combo_tau[c], arc_a, tail_a,
                           amps[c], mod))
    return out


def _picks(cost: np.ndarray, combo_tau: np.ndarray, taus: np.ndarray, omega: np.ndarray,
           n_fast: int | None = N_FAST) -> list[int]:
    """The best combination overall; for each of the last decades of the grid
    (tau omega_min in [0.01, 0.1), [0.1, 1), [1, 3]) the best combination whose
    slowest arc lies there (a slow arc merged with the tail is what the DRT guess
    misses; the linear cost alone cannot rank these placements reliably, so each
    decade gets one); and the best `n_fast` with the fastest arc at or above f_max
    (None: every such placement)."""
    slow_t = taus[combo_tau[:, -1]] * omega.min()
    out = [int(np.argmin(cost))]
    for lo, hi in ((0.01, 0.1), (0.1, 1.0), (1.0, np.inf)):
        c = int(np.argmin(np.where((slow_t >= lo) & (slow_t < hi), cost, np.inf)))
        out.append(c)
    fastest = combo_tau[:, 0]
    fast = sorted((int(np.argmin(np.where(fastest == k, cost, np.inf)))
                   for k in np.unique(fastest) if taus[k] <= 1.0 / omega.max()),
                  key=lambda c: cost[c])
    return out + fast[:n_fast]


class _Combinations:
    """Linear least squares for many (time constants, exponents) combinations.

    One weighted, unit-norm column per basis shape (series R, every (tau, alpha)
    arc, every tail exponent); each combination's normal equations are gathered
    from one Gram matrix, so nothing of the spectrum's size per combination.
    """

    def __init__(self, omega, z, series: bool, taus, alphas, tail_alphas):
        jw = 1j * omega
        mod = np.abs(z)
        b = np.concatenate([z.real, z.imag]) / np.concatenate([mod, mod])
        arc = 1.0 / (1.0 + (jw[None, None, :] * taus[:, None, None]) ** alphas[None, :, None])
        shapes = ([np.ones_like(jw)] if series else []) + list(arc.reshape(-1, len(jw)))
        shapes += [jw ** (-ta) for ta in tail_alphas]
        basis = np.stack(shapes, axis=1) / mod[:, None]
        basis = np.concatenate([basis.real, basis.imag], axis=0)
        self.norms = np.linalg.norm(basis, axis=0)
        self.norms[self.norms == 0] = 1.0
        basis /= self.norms
        self.gram, self.proj, self.bb = basis.T @ basis, basis.T @ b, float(b @ b)
        self.off, self.n_alpha, self.n_tau = int(series), len(alphas), len(taus)
        self.n_tail = len(tail_alphas)

    def solve(self, tau_sets: np.ndarray, alpha_sets: np.ndarray):
        """(cost, amplitudes, basis columns, time-constant indices) per combination,
        ordered placement-major; cost inf where an amplitude would be negative."""
        arc_idx = self.off + tau_sets[:, None, :] * self.n_alpha + alpha_sets[None, :, :]
        n_p, n_a, m = arc_idx.shape
        n_t = max(self.n_tail, 1)
        parts = [np.broadcast_to(arc_idx[:, :, None, :], (n_p, n_a, n_t, m))]
        if self.off:
            parts.insert(0, np.zeros((n_p, n_a, n_t, 1), dtype=int))
        if self.n_tail:
            t_idx = self.off + self.n_tau * self.n_alpha + np.arange(n_t)
            parts.append(np.broadcast_to(t_idx[None, None, :, None], (n_p, n_a, n_t, 1)))
        idx = np.concatenate(parts, axis=3).reshape(n_p * n_a * n_t, -1)
        k = idx.shape[1]
        ata = self.gram[idx[:, :, None], idx[:, None, :]] + 1e-12 * np.eye(k)[None]
        atb = self.proj[idx]
        with np.errstate(all="ignore"):
            try:
                sol = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                sol = np.full(atb.shape, np.nan)
            cost = self.bb - np.einsum("cj,cj->c", sol, atb)
        amps = sol / self.norms[idx]
        cost[np.any(amps < 0, axis=1) | ~np.isfinite(cost)] = np.inf
        return cost, amps, idx, np.repeat(tau_sets, n_a * n_t, axis=0)


def _arc_has_cpe(arc: Parallel) -> bool:
    return any(c.kind == "CPE" for c in arc.children)


def _vector(p0, series, arcs, tail, taus, ti, al, ta, amps, mod) -> np.ndarray:
    v = p0.copy()
    floor = 1e-6 * float(mod.min())
    k = 0
    if series:
        for e in series:
            v[e.start] = max(float(amps[0]), floor) / len(series)
        k = 1
    for arc, i, a in zip(arcs, ti, al, strict=True):
        set_arc(arc, v, max(float(amps[k]), floor), float(taus[i]), float(a))
        k += 1
    if tail is not None:
        inv_q = max(float(amps[k]), 1e-300)
        v[tail.start] = 1.0 / inv_q
        if tail.kind == "CPE":
            v[tail.start + 1] = float(ta)
    return v
