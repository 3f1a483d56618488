"""Automatic initial guesses for a circuit fit, read off the spectrum.

1. **Decomposition.** Non-negative least squares (rows weighted by 1/|Z|) of

       Z ~ R_inf + sum_k g_k / (1 + j omega tau_k) + tail terms

   on a grid of time constants tau_k (5 per decade, one decade beyond the
   measured window on each side). R_inf is the high-frequency real-axis
   intercept; g_k is a coarse distribution of relaxation times (DRT) whose peaks
   are the arcs. Tail terms exist only if the circuit has them at its top level:
   (j omega)^-alpha for a CPE or C tail (alpha from the low-frequency slope of
   log|Z''| against log f), (1 - j)/sqrt(omega) for a Warburg W, j omega for an
   inductance, 1/(j omega) for Wo.
2. **Arcs.** The DRT is smoothed and split into as many peaks as the circuit has
   arcs (top-level parallel blocks, and Ws). Per peak: R = its area (the arc
   diameter), tau = its log-mean (the apex, f_apex = 1 / (2 pi tau)) and alpha
   from its width (a ZARC's distribution has variance (pi^2/3)(1/alpha^2 - 1)
   in ln tau). Peaks are ranked two ways -- by size relative to |Z| where they
   show, and by size in Ohm -- since each is right where the other fails.
3. **Refinement.** For each candidate, every arc is modelled as
   R / (1 + (j omega tau)^alpha), which is linear in R: alpha and tau of each
   arc are scanned over a few values, R and the tail amplitudes re-solved by NNLS
   each time. The candidate closest to the data wins. Then Q = tau^alpha / R,
   i.e. f_apex = 1 / (2 pi (R Q)^(1/alpha)).

Arcs are matched to the circuit in writing order: the first arc in the string
gets the highest-frequency peak. Parameters the scheme does not cover
(elements nested deeper than an arc) get generic values of the right scale;
give `initial=` for unusual topologies.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from labctl.analysis.eis.circuit import Circuit, Element, Parallel, elements_in, top_level_parts

_PER_DECADE = 5
_ALPHA_RANGE = (0.45, 0.99)
_ALPHA_SCAN = (0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
_TAU_SCAN = (0.5, 0.7, 1.4, 2.0)


def _tail_alpha(omega: np.ndarray, z: np.ndarray) -> float:
    """Exponent of |Z''| ~ omega^-alpha over the lowest-frequency points (clipped)."""
    order = np.argsort(omega)[:6]
    y = np.abs(z.imag[order])
    ok = y > 0
    if ok.sum() < 3:
        return 0.9
    slope = np.polyfit(np.log(omega[order][ok]), np.log(y[ok]), 1)[0]
    return float(np.clip(-slope, 0.5, 1.0))


def _peaks(g: np.ndarray, n: int) -> list[np.ndarray]:
    """Split grid indices into `n` groups around the `n` largest peaks of smoothed g."""
    m = len(g)
    if n == 0 or m == 0:
        return [np.arange(0)] * n
    # Smooth over about half a decade so one CPE arc's scattered NNLS spikes merge.
    k = np.arange(-4, 5)
    kernel = np.exp(-0.5 * (k / 1.5) ** 2)
    s = np.convolve(g, kernel, mode="same")
    interior = np.r_[s[:-1] >= s[1:], True] & np.r_[True, s[1:] > s[:-1]]
    peaks = np.flatnonzero(interior & (s > 1e-12 * max(s.max(), 1e-300)))
    if len(peaks) > n:
        peaks = np.sort(peaks[np.argsort(s[peaks])[::-1][:n]])
    peaks = [int(x) for x in peaks]
    idx = np.arange(m)
    # Too few peaks: split the widest group at its weighted median until there are n.
    while len(peaks) < n:
        if not peaks:
            peaks = [int(x) for x in np.linspace(0, m - 1, n + 2)[1:-1]]
            break
        bounds = _boundaries(s, peaks, m)
        spans = [(g[a:b] * (idx[a:b] - p) ** 2).sum() / max(g[a:b].sum(), 1e-300)
                 for (a, b), p in zip(bounds, peaks, strict=True)]
        w = int(np.argmax(spans))
        a, b = bounds[w]
        c = np.cumsum(g[a:b])
        med = a + int(np.searchsorted(c, 0.5 * c[-1])) if c[-1] > 0 else (a + b) // 2
        lo, hi = max(a, med - 2), min(b - 1, med + 2)
        peaks[w:w + 1] = sorted({lo, hi}) if lo != hi else [lo, min(lo + 1, m - 1)]
    # Keep each group's core (1.5 decades either side of its peak): mass further
    # out is more often a neighbouring tail's than the arc's own.
    core = int(1.5 * _PER_DECADE)
    return [np.arange(max(a, p - core), min(b, p + core + 1))
            for (a, b), p in zip(_boundaries(s, peaks, m), peaks, strict=True)]


def _boundaries(s: np.ndarray, peaks: list, m: int) -> list[tuple[int, int]]:
    cuts = [0]
    for p, q in zip(peaks[:-1], peaks[1:], strict=True):
        cuts.append(p + 1 + int(np.argmin(s[p + 1:q + 1])) if q > p + 1 else q)
    cuts.append(m)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _is_arc(node) -> bool:
    return isinstance(node, Parallel) or (isinstance(node, Element) and node.kind == "Ws")


class _Weighted:
    """Non-negative amplitudes of fixed complex shapes, fitted with 1/|Z| weights."""

    def __init__(self, z: np.ndarray):
        self.mod = np.abs(z)
        self.b = np.concatenate([z.real, z.imag]) / np.concatenate([self.mod, self.mod])

    def solve(self, columns: np.ndarray) -> tuple[np.ndarray, float]:
        c = columns / self.mod[:, None]
        a = np.vstack([c.real, c.imag])
        # Column scaling keeps NNLS well conditioned when terms differ by decades.
        norms = np.linalg.norm(a, axis=0)
        norms[norms == 0] = 1.0
        x, rnorm = nnls(a / norms, self.b, maxiter=50 * a.shape[1])
        return x / norms, float(rnorm**2)


def _arc_shape(jw: np.ndarray, kind: str, tau, alpha) -> np.ndarray:
    """Unit-amplitude arc; tau and alpha may be (T, 1) arrays for T trials at once."""
    if kind == "Ws":  # tau here is the DRT peak; the element's tau_W is 2.5 times it
        s = np.sqrt(jw * 2.5 * tau)
        return np.tanh(s) / s
    return 1.0 / (1.0 + (jw * tau) ** alpha)


def _refine(jw, weighted: _Weighted, kinds: list[str], est: list[list[float]],
            tails: np.ndarray) -> tuple[list[list[float]], np.ndarray, float]:
    """Scan each arc's alpha and tau (one coordinate pass), re-solving amplitudes.

    The trials of one arc are solved together (batched normal equations); a trial
    needing a negative amplitude is rejected, so the result stays non-negative.
    """
    est = [list(e) for e in est]
    cols = [_arc_shape(jw, k, t, a) for k, (_, t, a) in zip(kinds, est, strict=True)]
    x, best = weighted.solve(np.stack(cols + list(tails.T), axis=1))
    inv = 1.0 / weighted.mod
    for i, kind in enumerate(kinds):
        t0, a0 = est[i][1], est[i][2]
        trials = [(t0 * m, a0) for m in _TAU_SCAN]
        if kind != "Ws":
            trials += [(t0, a) for a in _ALPHA_SCAN]
        tt = np.array([t for t, _ in trials])[:, None]
        aa = np.array([a for _, a in trials])[:, None]
        trial_cols = _arc_shape(jw, kind, tt, aa)  # (T, n)
        others = [c for j, c in enumerate(cols) if j != i] + list(tails.T)
        fixed = (np.stack(others, axis=1) if others
                 else np.zeros((len(jw), 0), dtype=complex))
        n_t, n = trial_cols.shape
        c = np.concatenate([np.broadcast_to(fixed, (n_t,) + fixed.shape),
                            trial_cols[:, :, None]], axis=2) * inv[None, :, None]
        a = np.concatenate([c.real, c.imag], axis=1)  # (T, 2n, K)
        norms = np.sqrt(np.einsum("tij,tij->tj", a, a))
        norms[norms == 0] = 1.0
        a = a / norms[:, None, :]
        ata = np.einsum("tij,tik->tjk", a, a)
        atb = np.einsum("tij,i->tj", a, weighted.b)
        try:
            sol = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            continue
        res = np.einsum("tij,tj->ti", a, sol) - weighted.b
        cost = np.einsum("ti,ti->t", res, res)
        cost[np.any(sol < 0, axis=1) | ~np.isfinite(cost)] = np.inf
        k = int(np.argmin(cost))
        if cost[k] < best:
            best = float(cost[k])
            est[i][1:] = [float(tt[k, 0]), float(aa[k, 0])]
            cols[i] = trial_cols[k]
            amps = sol[k] / norms[k]
            # Reorder amplitudes back to (arcs..., tails...).
            x = np.concatenate([amps[:i], amps[-1:], amps[i:len(cols) - 1],
                                amps[len(cols) - 1:-1]])
    for i in range(len(est)):
        est[i][0] = float(x[i])
    return est, x[len(est):], best


def initial_guess(circuit: Circuit, frequency_hz: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Starting parameters for fitting `circuit` to the spectrum (frequency_hz, z)."""
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    omega = 2.0 * np.pi * f
    jw = 1j * omega
    w_lo, w_hi = float(omega.min()), float(omega.max())
    mod = np.abs(z)
    scale = float(np.median(mod))
    weighted = _Weighted(z)

    parts = top_level_parts(circuit)
    kinds = {p.kind for p in parts if isinstance(p, Element)}
    arcs = [p for p in parts if _is_arc(p)]

    # Fixed-shape terms: series R and tails.
    tail_alpha = _tail_alpha(omega, z) if "CPE" in kinds else 1.0
    shapes: dict[str, np.ndarray] = {}
    if "R" in kinds:
        shapes["R"] = np.ones(len(f), dtype=complex)
    if "CPE" in kinds:
        shapes["CPE"] = np.exp(-tail_alpha * (np.log(omega) + 0.5j * np.pi))
    if "C" in kinds or "Wo" in kinds:
        shapes["C"] = 1.0 / jw
    if "W" in kinds or any(e.kind == "W" for a in arcs for e in elements_in(a)):
        shapes["W"] = (1.0 - 1.0j) / np.sqrt(omega)
    if "L" in kinds:
        shapes["L"] = jw
    tails = (np.stack(list(shapes.values()), axis=1) if shapes
             else np.zeros((len(f), 0), dtype=complex))

    tau = np.logspace(np.log10(0.1 / w_hi), np.log10(10.0 / w_lo),
                      max(int(_PER_DECADE * np.log10(100.0 * w_hi / w_lo)) + 1, 2))
    coef, _ = weighted.solve(np.hstack([1.0 / (1.0 + np.outer(jw, tau)), tails]))
    g = coef[:len(tau)]
    amp = dict(zip(shapes, coef[len(tau):], strict=True))
    ln_tau = np.log(tau)

    # Arcs are looked for inside the measured window, widened only where nothing
    # else could explain the RC mass: above f_max when the circuit has no series
    # R (its first arc then acts as one), below f_min when it has no tail.
    lo_arc = int(np.searchsorted(tau, 1.0 / w_hi)) if "R" in kinds else 0
    hi_arc = len(tau)
    if {"CPE", "C", "W", "Wo"} & kinds:
        hi_arc = int(np.searchsorted(tau, 1.0 / w_lo, side="right"))
    if "R" in shapes:
        amp["R"] += float(g[:lo_arc].sum())  # RC mass faster than f_max acts as R_s

    est: list[list[float]] = []
    if arcs:
        arc_kinds = ["Ws" if isinstance(a, Element) else "arc" for a in arcs]
        order = np.argsort(omega)
        mod_at_tau = np.exp(np.interp(-ln_tau, np.log(omega[order]), np.log(mod[order])))
        window = np.arange(lo_arc, hi_arc)
        best_cost, seen = np.inf, []
        for rank in (g[window] / mod_at_tau[window], g[window]):
            groups = [window[i] for i in _peaks(rank, len(arcs))]
            key = [tuple(x) for x in groups]
            if key in seen:
                continue
            seen.append(key)
            cand, tail_amp, cost = _refine(jw, weighted, arc_kinds,
                                           [_drt_arc(g, ln_tau, idx, scale) for idx in groups],
                                           tails)
            if cost < best_cost:
                best_cost, est = cost, cand
                amp = dict(zip(shapes, tail_amp, strict=True))

    return _assemble(circuit, parts, arcs, est, amp, tail_alpha, w_lo, w_hi, scale,
                     float(mod.min()))


def _drt_arc(g: np.ndarray, ln_tau: np.ndarray, idx: np.ndarray, scale: float) -> list[float]:
    """(R, tau, alpha) of one DRT peak."""
    gi = g[idx]
    r = float(gi.sum())
    if r <= 1e-9 * scale or len(idx) == 0:
        mid = float(ln_tau[idx].mean()) if len(idx) else float(ln_tau.mean())
        return [1e-3 * scale, float(np.exp(mid)), 0.8]
    mu = float((gi * ln_tau[idx]).sum() / r)
    var = float((gi * (ln_tau[idx] - mu) ** 2).sum() / r)
    alpha = float(np.clip(1.0 / np.sqrt(1.0 + 3.0 * var / np.pi**2), *_ALPHA_RANGE))
    return [r, float(np.exp(mu)), alpha]


def _assemble(circuit, parts, arcs, est, amp, tail_alpha, w_lo, w_hi, scale, mod_min):
    p = np.empty(circuit.n_parameters)
    done = np.zeros(circuit.n_parameters, dtype=bool)

    def put(el: Element, *values: float):
        p[el.start:el.stop] = values
        done[el.start:el.stop] = True

    for arc, (r, t0, alpha) in zip(arcs, est, strict=True):
        r = max(r, 1e-3 * scale)
        alpha = float(np.clip(alpha, *_ALPHA_RANGE))
        if isinstance(arc, Element):  # Ws
            put(arc, r, 2.5 * t0)
            continue
        inner = elements_in(arc)
        n_r = max(sum(e.kind == "R" for e in inner), 1)
        for e in inner:
            if e.kind == "R":
                put(e, r / n_r)
            elif e.kind == "C":
                put(e, t0 / r)
            elif e.kind == "CPE":
                put(e, t0**alpha / r, alpha)
            elif e.kind == "W" and amp.get("W", 0.0) > 0:
                put(e, amp["W"])

    series_r = [e for e in parts if isinstance(e, Element) and e.kind == "R"]
    for e in series_r:
        put(e, max(amp.get("R", 0.0), 1e-3 * mod_min) / len(series_r))
    for e in parts:
        if not isinstance(e, Element) or done[e.start]:
            continue
        c = amp.get({"Wo": "C"}.get(e.kind, e.kind), 0.0)
        if e.kind == "CPE" and c > 0:
            put(e, 1.0 / c, min(tail_alpha, _ALPHA_RANGE[1]))
        elif e.kind == "C" and c > 0:
            put(e, 1.0 / c)
        elif e.kind in ("W", "L") and c > 0:
            put(e, c)
        elif e.kind == "Wo" and c > 0:
            # Low-frequency limit Z0 / (j omega tau): tau at the lowest frequency.
            put(e, c / w_lo, 1.0 / w_lo)
    _generic(circuit, p, done, w_lo, w_hi, scale)
    return p


def _generic(circuit: Circuit, p: np.ndarray, done: np.ndarray, w_lo: float, w_hi: float,
             scale: float) -> None:
    """Right-scale values for anything the spectrum decomposition did not set."""
    w_mid = float(np.sqrt(w_lo * w_hi))
    values = {
        "R": (0.1 * scale,),
        "C": (1.0 / (w_mid * scale),),
        "L": (0.01 * scale / w_hi,),
        "CPE": (1.0 / (w_mid**0.8 * scale), 0.8),
        "W": (0.1 * scale * np.sqrt(w_lo),),
        "Wo": (scale, 1.0 / w_mid),
        "Ws": (scale, 1.0 / w_mid),
    }
    for el in circuit.elements:
        if not done[el.start]:
            p[el.start:el.stop] = values[el.kind]
