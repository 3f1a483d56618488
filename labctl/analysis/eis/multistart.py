"""Starting points, search box, arc order and identifiability for robust fits.

A single local fit from one guess finds the nearest minimum; on spectra whose
arcs overlap, or whose fastest arc is partly above the highest measured
frequency, that is often the wrong one (arcs swapped, one arc absorbing both).
`fit_spectrum` therefore starts several local fits and keeps the lowest chi2:

1. the DRT-based guess of `guess.initial_guess` (arcs = peaks of a coarse DRT), and
   the same with the arcs from the peaks of the regularised DRT (`drt.py`, `drt_start`);
2. structural variants of it, for the failure modes seen on real spectra:
   - the fastest arc moved above f_max (part of the "series resistance" is the
     bulk arc's resistance, the pellet case),
   - the slowest arc moved below f_min,
   - two neighbouring arcs merged into one peak (time constants close: both
     placed at its log-mean, a factor 3 either side, half the resistance each);
3. the arc-placement grid of `arc_search` (every placement of the arcs' time
   constants, resistances solved linearly) where the circuit is series R, simple
   arcs and one tail; otherwise
   a bounded random search in log-parameter space: `n_random` points drawn in a
   box derived from the data (arc time constants anywhere from 0.1/omega_max to
   10/omega_min, in increasing order; arc resistances from 1 % to 100 % of the
   spectrum's real-axis span; other parameters within a decade of the guess),
   scored by chi2 without fitting; the best few are fitted.

Arcs of identical make-up (e.g. the two ``p(R,CPE)`` blocks of
``R0-p(R1,CPE1)-p(R2,CPE2)``) are interchangeable in the model; results are put
in a canonical order -- increasing time constant, so the first-written arc is
the fastest (bulk before grain boundary) -- so "swapped arcs" cannot occur.

Identifiability: a parameter is flagged `not_identifiable` when the data do not
determine it to within `identifiable_within` (relative; default 0.5): twice its
standard error exceeds that share of its value (or is infinite), or another local
minimum fits statistically as well (chi2 within one noise variance of the best:
delta chi2 < s^2 = chi2 / dof) with that parameter differing by more than
`identifiable_within` (at most 10 %): the data cannot tell the two apart. The
default is the usual "relative standard error above 25 %"; a user who needs a
resistance to 5 % passes 0.05 and gets the flag wherever the data cannot give 5 %.
"""

from __future__ import annotations

import numpy as np

from labctl.analysis.eis.circuit import Circuit, Element, Parallel, elements_in, top_level_parts

IDENTIFIABLE_WITHIN = 0.5  # 2 standard errors within 50 %: relative stderr <= 25 %
ALTERNATIVE_DIFFERENCE = 0.1
ALPHA_FLOOR = 0.2  # CPE exponents below this are not a physical element


def search_bounds(circuit: Circuit, f: np.ndarray, z: np.ndarray, lb: np.ndarray,
                  ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite log-space bounds where the user gave none (0 or inf).

    Resistances stay within 1e-6 min|Z| .. 1e3 max|Z|; CPE exponents >= 0.2;
    everything else within 1e-25 .. 1e25 of its unit. Finite bounds let a
    parameter that runs towards 0 (R0 -> 0) stop at a bound the fit reports as
    `at_bound`, instead of the optimizer chasing ln(0) until it gives up.
    """
    mod = np.abs(z)
    lo, hi = lb.copy(), ub.copy()
    for el in circuit.elements:
        for k in range(el.start, el.stop):
            if el.kind == "R" or (el.kind in ("Wo", "Ws") and k == el.start):
                floor, ceil = np.log(1e-6 * mod.min()), np.log(1e3 * mod.max())
            elif el.kind == "CPE" and k == el.start + 1:
                floor, ceil = np.log(ALPHA_FLOOR), 0.0
            else:
                floor, ceil = np.log(1e-25), np.log(1e25)
            if not np.isfinite(lo[k]):
                lo[k] = floor
            if not np.isfinite(hi[k]):
                hi[k] = ceil
            if hi[k] <= lo[k]:  # user bounds outside the default box win
                lo[k], hi[k] = lb[k] if np.isfinite(lb[k]) else hi[k] - 50, hi[k]
    return lo, hi


def _simple_arcs(circuit: Circuit) -> list[Parallel]:
    """Top-level p(R, CPE) / p(R, C) blocks: the arcs whose (R, tau, alpha) we can set."""
    out = []
    for part in top_level_parts(circuit):
        if isinstance(part, Parallel) and len(part.children) == 2 and all(
                isinstance(c, Element) for c in part.children):
            kinds = sorted(c.kind for c in part.children)
            if kinds in (["CPE", "R"], ["C", "R"]):
                out.append(part)
    return out


def _arc_elements(arc: Parallel) -> tuple[Element, Element]:
    r = next(c for c in arc.children if c.kind == "R")
    cap = next(c for c in arc.children if c.kind != "R")
    return r, cap


def arc_state(arc: Parallel, p: np.ndarray) -> tuple[float, float, float]:
    """(R, tau, alpha) of a simple arc: tau = (R Q)^(1/alpha) (C: alpha = 1, tau = R C)."""
    r_el, cap = _arc_elements(arc)
    r = float(p[r_el.start])
    if cap.kind == "C":
        return r, r * float(p[cap.start]), 1.0
    q, a = float(p[cap.start]), float(p[cap.start + 1])
    return r, (r * q) ** (1.0 / a), a


def set_arc(arc: Parallel, p: np.ndarray, r: float, tau: float, alpha: float) -> None:
    r_el, cap = _arc_elements(arc)
    p[r_el.start] = r
    if cap.kind == "C":
        p[cap.start] = tau / r
    else:
        p[cap.start] = tau**alpha / r
        p[cap.start + 1] = alpha


def canonical_order(circuit: Circuit, p: np.ndarray,
                    reference: np.ndarray | None = None) -> np.ndarray:
    """Interchangeable top-level arcs sorted by increasing time constant.

    Without `reference` the first-written arc gets the fastest; with one (the
    user's own initial values) the arcs keep the user's ranking: the arc the user
    started fastest gets the fastest fitted one, and so on.
    """
    arcs = _simple_arcs(circuit)
    groups: dict[tuple, list[Parallel]] = {}
    for a in arcs:
        groups.setdefault(tuple(c.kind for c in a.children), []).append(a)
    out = p.copy()
    for same in groups.values():
        if len(same) < 2:
            continue
        by_tau = np.argsort([arc_state(a, p)[1] for a in same], kind="stable")
        if reference is None:
            slots = range(len(same))
        else:
            slots = np.argsort([arc_state(a, reference)[1] for a in same], kind="stable")
        for slot, src in zip(slots, by_tau, strict=True):
            target = same[slot]
            out[target.start:target.stop] = p[same[src].start:same[src].stop]
    return out


def _series_resistors(circuit: Circuit) -> list[Element]:
    return [e for e in top_level_parts(circuit) if isinstance(e, Element) and e.kind == "R"]


def structural_variants(circuit: Circuit, p0: np.ndarray, f: np.ndarray) -> list[np.ndarray]:
    """Variants of the DRT guess for arcs outside the band and merged arcs."""
    w = 2.0 * np.pi * f
    w_lo, w_hi = float(w.min()), float(w.max())
    arcs = _simple_arcs(circuit)
    if not arcs:
        return []
    states = [arc_state(a, p0) for a in arcs]
    order = np.argsort([s[1] for s in states])
    out = []
    series = _series_resistors(circuit)
    if series:
        # Fastest arc above f_max: it takes part of the apparent series resistance.
        fast = arcs[order[0]]
        r_s = float(sum(p0[e.start] for e in series))
        for share in (0.5, 0.9):
            v = p0.copy()
            r_fast, _, a_fast = states[order[0]]
            set_arc(fast, v, r_fast + share * r_s, 0.3 / w_hi, max(a_fast, 0.8))
            for e in series:
                v[e.start] = p0[e.start] * (1.0 - share)
            out.append(v)
    # Slowest arc below f_min, twice as large as guessed.
    v = p0.copy()
    r_slow, _, a_slow = states[order[-1]]
    set_arc(arcs[order[-1]], v, 2.0 * r_slow, 3.0 / w_lo, a_slow)
    out.append(v)
    # Neighbouring arcs merged in one DRT peak: split the larger one.
    for i in range(len(order) - 1):
        a, b = order[i], order[i + 1]
        big = a if states[a][0] >= states[b][0] else b
        r_big, t_big, a_big = states[big]
        v = p0.copy()
        set_arc(arcs[a], v, 0.5 * r_big, t_big / 3.0, max(a_big, 0.8))
        set_arc(arcs[b], v, 0.5 * r_big, t_big * 3.0, max(a_big, 0.8))
        out.append(v)
    return out


def drt_start(circuit: Circuit, p0: np.ndarray, f: np.ndarray, z: np.ndarray
              ) -> np.ndarray | None:
    """The guess with its arcs taken from the regularised DRT's peaks (`drt.py`).

    The largest peaks (one per simple arc), in order of time constant, give each
    arc's R (peak area) and tau; the exponent follows the peak's width in ln tau
    (a ZARC's half-width grows as alpha falls; clipped to 0.6..1); the series
    resistance is the DRT's R_inf. None when the DRT has fewer peaks than arcs.
    """
    from labctl.analysis.eis.drt import drt

    arcs = _simple_arcs(circuit)
    if not arcs:
        return None
    try:
        d = drt(f, z)
    except Exception:  # a start is optional; a spectrum the DRT cannot take gets none
        return None
    peaks = sorted(d.peaks, key=lambda p: -p.resistance_ohm)[:len(arcs)]
    if len(peaks) < len(arcs):
        return None
    peaks.sort(key=lambda p: p.tau_s)
    v = p0.copy()
    order = np.argsort([arc_state(a, p0)[1] for a in arcs])
    for k, pk in zip(order, peaks, strict=True):
        width = np.log(pk.span_tau_s[1] / pk.span_tau_s[0])
        alpha = float(np.clip(1.0 - 0.08 * max(width - 2.0, 0.0), 0.6, 1.0))
        set_arc(arcs[k], v, pk.resistance_ohm, pk.tau_s, min(alpha, 0.95))
    series = _series_resistors(circuit)
    for e in series:
        v[e.start] = max(d.r_inf_ohm, 1e-6 * float(np.abs(z).min())) / len(series)
    return v


def random_starts(circuit: Circuit, p0: np.ndarray, f: np.ndarray, z: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, n: int, rng: np.random.Generator
                  ) -> list[np.ndarray]:
    """`n` points of the data-derived search box (see the module docstring)."""
    w = 2.0 * np.pi * f
    span = float(max(z.real.max() - z.real.min(), 1e-3 * np.abs(z).max()))
    arcs = _simple_arcs(circuit)
    in_arcs = {k for a in arcs for e in elements_in(a) for k in range(e.start, e.stop)}
    out = []
    t_lo, t_hi = np.log(0.1 / w.max()), np.log(10.0 / w.min())
    for _ in range(n):
        v = p0 * np.exp(rng.normal(0.0, np.log(10.0) / 2, size=p0.size))
        taus = np.sort(np.exp(rng.uniform(t_lo, t_hi, size=len(arcs))))
        for arc, tau in zip(arcs, taus, strict=True):
            set_arc(arc, v, span * 10 ** rng.uniform(-2, 0), float(tau), rng.uniform(0.6, 1.0))
        for e in _series_resistors(circuit):
            v[e.start] = max(float(z.real.min()), 1e-3 * span) * 10 ** rng.uniform(-1.5, 0)
        for el in circuit.elements:  # exponents outside the arcs: anywhere plausible
            if el.kind == "CPE" and el.start not in in_arcs:
                v[el.start + 1] = rng.uniform(0.5, 1.0)
        out.append(np.exp(np.clip(np.log(v), lo, hi)))
    return out


def identifiability(theta: np.ndarray, stderr: np.ndarray, best_chi2: float, dof: int,
                    alternatives: list[tuple[float, np.ndarray]],
                    within: float = IDENTIFIABLE_WITHIN) -> np.ndarray:
    """Per-parameter `not_identifiable` flags (module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(stderr / theta)
    flags = ~np.isfinite(rel) | (2.0 * rel > within)
    s2 = best_chi2 / dof if dof > 0 else np.inf
    apart = np.log1p(min(within, ALTERNATIVE_DIFFERENCE))
    for chi2, other in alternatives:
        if chi2 - best_chi2 < s2:
            with np.errstate(divide="ignore", invalid="ignore"):
                flags |= np.abs(np.log(other / theta)) > apart
    return flags
