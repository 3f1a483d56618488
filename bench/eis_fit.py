"""Benchmark: fitting 200 impedance spectra, labctl against impedance.py; Lin-KK timing.

200 spectra of 60 points (1 MHz to 0.1 Hz) of R0-p(R1,CPE1)-p(R2,CPE2) with
parameters drawn at random (seeded) and 0.5 % Gaussian noise on Z' and Z''
(relative to |Z|). Fitted with

- impedance.py ``CustomCircuit.fit`` (``weight_by_modulus=True``, so it minimises
  the same objective as labctl), started from the true parameters each scaled by
  a random factor in [0.7, 1.4] (a reasonable user guess);
- labctl ``fit_many`` (warm start, automatic guess checked for every spectrum);
- labctl ``fit_many(check_guess=False)`` (guess only when the warm fit looks bad);
- labctl ``fit_spectrum`` per spectrum, automatic guess, no warm start.

A second set, 200 spectra of one slowly ageing cell (R2 and tau2 growing along
the series, the case warm starts are for), is fitted by the three labctl ways.

chi-square for every fitter is the same formula, `labctl.analysis.eis.chi_square`
with modulus weighting: sum(((Z_fit - Z)/|Z|)^2) over real and imaginary parts.
Also times Lin-KK on one 60-point spectrum. Prints figures; never fails on timing.

    python bench/eis_fit.py [--n 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's labctl

from labctl.analysis.eis import chi_square, fit_many, fit_spectrum, lin_kk, parse_circuit

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)"


def make_spectra(n: int, seed: int):
    rng = np.random.default_rng(seed)
    f = np.logspace(6, -1, 60)
    w = 2 * np.pi * f
    spectra, truths = [], []
    for _ in range(n):
        r0 = 10 ** rng.uniform(0, 1.5)
        r1, a1 = 10 ** rng.uniform(1, 2.5), rng.uniform(0.8, 0.95)
        r2, a2 = 10 ** rng.uniform(1.5, 3), rng.uniform(0.7, 0.9)
        # Time constants: arc 1 at 1e-5..1e-3 s, arc 2 at 1e-2..1 s
        # (apexes 160 Hz-16 kHz and 0.16-16 Hz).
        t1, t2 = 10 ** rng.uniform(-5, -3), 10 ** rng.uniform(-2, 0)
        q1, q2 = t1**a1 / r1, t2**a2 / r2
        # Closed form written out here, independent of labctl's circuit code.
        z = r0 + r1 / (1 + r1 * q1 * (1j * w) ** a1) + r2 / (1 + r2 * q2 * (1j * w) ** a2)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=60) + 1j * rng.normal(size=60))
        spectra.append((f, z))
        truths.append(np.array([r0, r1, q1, a1, r2, q2, a2]))
    return spectra, truths


def make_series(n: int, seed: int):
    """A slowly changing cell: R1, R2, tau2 grow and the alphas fall along the series."""
    rng = np.random.default_rng(seed)
    f = np.logspace(6, -1, 60)
    w = 2 * np.pi * f
    out = []
    for k in range(n):
        s = k / max(n - 1, 1)
        r0, r1, r2 = 5 * (1 + 0.3 * s), 40 * (1 + s), 150 * (1 + 2 * s)
        a1, a2 = 0.9 - 0.05 * s, 0.8 - 0.05 * s
        t1, t2 = 1e-4 * (1 + s), 0.05 * (1 + 3 * s)
        q1, q2 = t1**a1 / r1, t2**a2 / r2
        z = r0 + r1 / (1 + r1 * q1 * (1j * w) ** a1) + r2 / (1 + r2 * q2 * (1j * w) ** a2)
        out.append((f, z + 0.005 * np.abs(z) * (rng.normal(size=60) + 1j * rng.normal(size=60))))
    return out


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is less
    disturbed when other jobs share the machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from impedance.models.circuits import CustomCircuit

    spectra, truths = make_spectra(args.n, args.seed)
    rng = np.random.default_rng(args.seed + 1000)
    circuit = parse_circuit(CIRCUIT)

    def run_impedance_py():
        chis = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for (f, z), truth in zip(spectra, truths, strict=True):
                guess = truth * rng.uniform(0.7, 1.4, size=truth.size)
                guess[[3, 6]] = np.minimum(guess[[3, 6]], 0.99)  # alpha must start in (0, 1]
                cc = CustomCircuit(CIRCUIT, initial_guess=list(guess))
                cc.fit(f, z, weight_by_modulus=True)
                chis.append(chi_square(z, cc.predict(f)))
        return np.array(chis)

    chi_imp, t_imp, c_imp = _timed(run_impedance_py)

    def chi(results):
        return np.array([chi_square(r.z_data, circuit.impedance(r.frequency_hz, r.parameters))
                         for r in results])

    many, t_many, c_many = _timed(lambda: fit_many(spectra, circuit, warm_start=True))
    lazy, t_lazy, c_lazy = _timed(lambda: fit_many(spectra, circuit, check_guess=False))
    single, t_single, c_single = _timed(lambda: [fit_spectrum(f, z, circuit)
                                                 for f, z in spectra])
    # Relative error of each fitted parameter against the truth (median over spectra).
    err = np.array([np.abs(r.parameters / t - 1) for r, t in zip(single, truths, strict=True)])

    series = make_series(args.n, args.seed + 7)
    s_many, ts_many, _ = _timed(lambda: fit_many(series, circuit))
    s_lazy, ts_lazy, _ = _timed(lambda: fit_many(series, circuit, check_guess=False))
    s_cold, ts_cold, _ = _timed(lambda: [fit_spectrum(f, z, circuit) for f, z in series])

    # Lin-KK on one 60-point spectrum: mean, and best of 5 batches (less disturbed
    # by other processes on the machine).
    f, z = spectra[0]
    kk = lin_kk(f, z)
    batches = timeit.repeat(lambda: lin_kk(f, z), number=40, repeat=5)
    t_kk_mean, t_kk_best = sum(batches) / 200, min(batches) / 40

    n = args.n
    print(f"{n} spectra x 60 points, {CIRCUIT}, 0.5 % noise, seed {args.seed}; "
          "times per spectrum, wall (CPU)")
    print(f"impedance.py CustomCircuit.fit : {1e3 * t_imp / n:7.2f} ms ({1e3 * c_imp / n:7.2f})"
          f"   median chi2 {np.median(chi_imp):.4e}")
    for label, t, c, res in (("labctl fit_many               ", t_many, c_many, many),
                             ("labctl fit_many(check_guess=F)", t_lazy, c_lazy, lazy),
                             ("labctl fit_spectrum (cold)    ", t_single, c_single, single)):
        x = chi(res)
        print(f"{label} : {1e3 * t / n:7.2f} ms ({1e3 * c / n:7.2f})   median chi2 "
              f"{np.median(x):.4e}   speed-up x{t_imp / t:.1f} (CPU x{c_imp / c:.1f})   "
              f"chi2 <= impedance.py's in {np.sum(x <= chi_imp * (1 + 1e-6))}/{n}, "
              f"worst ratio {np.max(x / chi_imp):.4f}")
    print(f"fit_spectrum failures (success=False): {sum(not r.success for r in single)}; "
          f"median |rel. error| per parameter vs truth: "
          + ", ".join(f"{name} {100 * e:.2f}%" for name, e in
                      zip(circuit.parameter_names, np.median(err, axis=0), strict=True)))
    print(f"slowly changing series of {n}: fit_many {1e3 * ts_many / n:.2f} ms, "
          f"fit_many(check_guess=False) {1e3 * ts_lazy / n:.2f} ms, "
          f"fit_spectrum {1e3 * ts_cold / n:.2f} ms per spectrum (wall); median chi2 "
          f"{np.median([r.chi_square for r in s_many]):.4e} / "
          f"{np.median([r.chi_square for r in s_lazy]):.4e} / "
          f"{np.median([r.chi_square for r in s_cold]):.4e}")
    print(f"Lin-KK, 60 points: {1e3 * t_kk_mean:.2f} ms mean, {1e3 * t_kk_best:.2f} ms best "
          f"(M={kk.m}, mu={kk.mu:.3f}, "
          f"max residual {kk.max_abs_residual_pct:.2f} %, valid={kk.valid})")


if __name__ == "__main__":
    main()
