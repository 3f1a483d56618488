"""Benchmark: robust fitting on spectra nobody tuned for, labctl against impedance.py.

N synthetic spectra (default 1,000: half of each circuit) of

- ``R0-p(R1,CPE1)-p(R2,CPE2)`` (two arcs) and
- ``R0-p(R1,CPE1)-p(R2,CPE2)-CPE3`` (a solid-electrolyte pellet: bulk, grain
  boundary, blocking electrode),

71 points from 1 MHz to 0.1 Hz (10 per decade), parameters drawn log-uniformly
and seeded:

- R1 in 1 Ohm..10 kOhm; R2 / R1 in 0.1..10; R0 / R1 in 0.1..2;
- arc time-constant ratio tau2 / tau1 in 3..1e6; tau1 placed so that both apexes
  lie between f_max * 10^0 .. f_min, i.e. at most half of an arc (its apex at a
  band edge) is outside the measured band;
- CPE exponents uniform in 0.6..1;
- CPE3 (pellet): |Z_CPE3| at 0.1 Hz = 0.3..10 times R0 + R1 + R2, exponent 0.6..1;
- Gaussian noise on Z' and Z'' of sigma = 0.1..2 % of |Z| (log-uniform).

Each spectrum is fitted by

- labctl ``fit_spectrum`` (automatic multi-start, no user guess), and
- impedance.py ``CustomCircuit.fit(weight_by_modulus=True)`` (the same objective)
  started from the guess a user takes from impedance.py's documentation: the
  values of its fitting example, R = 0.01 / 0.005 Ohm, C-like Q = 0.1, and the
  CPE exponent 0.9 of its Randles-CPE example:
  [R0 .01, R1 .005, Q1 .1, a1 .9, R2 .005, Q2 .1, a2 .9 (, Q3 .1, a3 .9)].

Printed per circuit and overall: share of spectra with every resistance within
5 % of the truth, share labctl flags `not_identifiable` (and of those, how many
it got right anyway), median and worst chi2(labctl)/chi2(impedance.py), share
with chi2 <= impedance.py's (1e-6 relative slack), and time per spectrum (wall
and CPU). chi2 for both is `labctl.analysis.eis.chi_square` (modulus weighting).
Prints figures; never fails.

    python bench/eis_robust.py [--n 1000] [--seed 1] [--no-peer]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's labctl

from labctl.analysis.eis import chi_square, fit_spectrum  # noqa: E402

TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)"
PELLET = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
F = np.logspace(6, -1, 71)
USER_GUESS = {TWO_ARCS: [0.01, 0.005, 0.1, 0.9, 0.005, 0.1, 0.9],
              PELLET: [0.01, 0.005, 0.1, 0.9, 0.005, 0.1, 0.9, 0.1, 0.9]}
RESISTANCES = (0, 1, 4)  # R0, R1, R2 in both parameter vectors


def _lu(rng, lo, hi):
    return float(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def draw(rng, circuit: str):
    """(truth parameters, noisy Z, noise level) of one spectrum; closed forms written here."""
    w = 2 * np.pi * F
    r1 = _lu(rng, 1, 1e4)
    r2 = r1 * _lu(rng, 0.1, 10)
    r0 = r1 * _lu(rng, 0.1, 2)
    a1, a2 = rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    ratio = _lu(rng, 3, 1e6)
    # Apex angular frequencies 1/tau within [w_min, w_max]: tau1 in [1/w_max, ratio.. ].
    lo, hi = np.log10(1 / w.max()), np.log10(1 / w.min()) - np.log10(ratio)
    t1 = 10 ** rng.uniform(lo, max(hi, lo))
    t2 = t1 * ratio
    q1, q2 = t1**a1 / r1, t2**a2 / r2
    z = r0 + r1 / (1 + r1 * q1 * (1j * w) ** a1) + r2 / (1 + r2 * q2 * (1j * w) ** a2)
    truth = [r0, r1, q1, a1, r2, q2, a2]
    if circuit == PELLET:
        a3 = rng.uniform(0.6, 1.0)
        mag = (r0 + r1 + r2) * _lu(rng, 0.3, 10)
        q3 = 1.0 / (mag * w.min() ** a3)
        z = z + 1.0 / (q3 * (1j * w) ** a3)
        truth += [q3, a3]
    sigma = _lu(rng, 1e-3, 2e-2)
    z = z + sigma * np.abs(z) * (rng.normal(size=z.size) + 1j * rng.normal(size=z.size))
    return np.array(truth), z, sigma


def _impedance_py(circuit: str, z):
    from impedance.models.circuits import CustomCircuit

    cc = CustomCircuit(circuit, initial_guess=list(USER_GUESS[circuit]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cc.fit(F, z, weight_by_modulus=True)
            return chi_square(z, cc.predict(F)), np.asarray(cc.parameters_)
        except Exception:  # it raises when curve_fit gives up: count as a miss
            return np.inf, np.full(len(USER_GUESS[circuit]), np.nan)


def _recovered(params, truth) -> bool:
    p = np.asarray(params)[list(RESISTANCES)]
    t = truth[list(RESISTANCES)]
    return bool(np.all(np.abs(p / t - 1) <= 0.05))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true", help="skip impedance.py")
    ap.add_argument("--show-misses", type=int, default=0, help="print the first K misses")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    rows = []
    started = time.perf_counter()
    for i in range(args.n):
        if i and i % 50 == 0:
            print(f"  ... {i}/{args.n} spectra, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
        circuit = TWO_ARCS if i % 2 == 0 else PELLET
        truth, z, sigma = draw(rng, circuit)
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit_spectrum(F, z, circuit)
        t_l, c_l = time.perf_counter() - t0, time.process_time() - c0
        row = {"circuit": circuit, "truth": truth, "sigma": sigma, "lab_chi": res.chi_square,
               "lab_ok": _recovered(res.parameters, truth), "t_lab": t_l, "c_lab": c_l,
               "flag": bool(np.any(getattr(res, "not_identifiable", False))),
               "converged": getattr(res, "converged", res.success),
               "params": res.parameters,
               # What the fit itself claims: every R within 5 % at two standard errors,
               # and whether the truth lies within three reported standard errors.
               "claims_5pct": bool(np.all(2 * res.stderr[list(RESISTANCES)]
                                          <= 0.05 * res.parameters[list(RESISTANCES)])),
               "within_3se": bool(np.all(np.abs(res.parameters - truth)[list(RESISTANCES)]
                                         <= 3 * res.stderr[list(RESISTANCES)]))}
        if not args.no_peer:
            t0, c0 = time.perf_counter(), time.process_time()
            chi_i, p_i = _impedance_py(circuit, z)
            row.update(imp_chi=chi_i, imp_ok=(np.all(np.isfinite(p_i))
                                              and _recovered(p_i, truth)),
                       t_imp=time.perf_counter() - t0, c_imp=time.process_time() - c0)
        rows.append(row)

    def report(label, sel):
        n = len(sel)
        if not n:
            return
        lab_ok = np.mean([r["lab_ok"] for r in sel])
        flagged = [r for r in sel if r["flag"]]
        t_l = np.mean([r["t_lab"] for r in sel])
        c_l = np.mean([r["c_lab"] for r in sel])
        print(f"{label} ({n} spectra)")
        print(f"  labctl       : every R within 5 %: {100 * lab_ok:5.1f} %   "
              f"converged {100 * np.mean([r['converged'] for r in sel]):5.1f} %   "
              f"flagged not_identifiable {len(flagged)} "
              f"(of those within 5 % anyway: {sum(r['lab_ok'] for r in flagged)})   "
              f"recovered among unflagged "
              f"{100 * np.mean([r['lab_ok'] for r in sel if not r['flag']] or [np.nan]):5.1f} %"
              f"   {1e3 * t_l:6.2f} ms/spectrum (CPU {1e3 * c_l:6.2f})")
        claims = [r for r in sel if r["claims_5pct"]]
        print(f"  labctl claims every R within 5 % (2 standard errors) on {len(claims)}: "
              f"right on {sum(r['lab_ok'] for r in claims)}; truth within 3 reported "
              f"standard errors on {100 * np.mean([r['within_3se'] for r in sel]):5.1f} %")
        if "imp_chi" in sel[0]:
            ratio = np.array([r["lab_chi"] / r["imp_chi"] for r in sel])
            t_i = np.mean([r["t_imp"] for r in sel])
            c_i = np.mean([r["c_imp"] for r in sel])
            print(f"  impedance.py : every R within 5 %: "
                  f"{100 * np.mean([r['imp_ok'] for r in sel]):5.1f} %   "
                  f"{1e3 * t_i:6.2f} ms/spectrum (CPU {1e3 * c_i:6.2f})")
            print(f"  chi2 labctl / impedance.py: median {np.median(ratio):.4f}, worst "
                  f"{np.max(ratio):.4f}; labctl <= impedance.py on "
                  f"{100 * np.mean(ratio <= 1 + 1e-6):5.1f} %; speed-up x{t_i / t_l:.1f} "
                  f"(CPU x{c_i / c_l:.1f})")

    print(f"{args.n} spectra, {len(F)} points 1 MHz..0.1 Hz, seed {args.seed}")
    for circuit in (TWO_ARCS, PELLET):
        report(circuit, [r for r in rows if r["circuit"] == circuit])
    report("all", rows)
    misses = [r for r in rows if not r["lab_ok"]][:args.show_misses]
    for r in misses:
        ratio = r["truth"][4] and (r["truth"][5] * r["truth"][4]) ** (1 / r["truth"][6]) / \
            (r["truth"][2] * r["truth"][1]) ** (1 / r["truth"][3])
        print(f"miss {r['circuit']}: sigma {100 * r['sigma']:.2f} % tau ratio {ratio:.3g} "
              f"flag {r['flag']} truth R {np.round(r['truth'][list(RESISTANCES)], 4)} "
              f"a {np.round(r['truth'][[3, 6]], 2)} fit R "
              f"{np.round(r['params'][list(RESISTANCES)], 4)}")


if __name__ == "__main__":
    # Both fitters on one BLAS thread: their matrices are small, and extra threads only
    # spin on a shared machine (labctl does this itself, labctl/analysis/eis/blas.py).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        main()
