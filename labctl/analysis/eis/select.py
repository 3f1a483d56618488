"""`--circuit auto`: the equivalent circuit for spectra labctl did not measure.

A run labctl recorded knows its sample (a cell or a pellet), so it has a default circuit.
A spectrum from another potentiostat does not: a cell with a diffusion tail that is not
45 degrees, a second arc, or no tail at all is badly served by one fixed circuit. So each
candidate below is fitted (multi-start, as every fit) to a few of the spectra and scored
by the Bayesian information criterion of the weighted least-squares fit,

    BIC = n ln(chi2 / n) + k ln(n),   n = 2 x points (real and imaginary), k = parameters,

summed over those spectra. A candidate whose parameters the data cannot determine on most
of them (`not_identifiable`) ranks after every one that is determined: an extra arc that
only fits noise is not chosen even when its BIC is lower by chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The circuits a battery or solid-electrolyte spectrum is usually read with: one or two
# arcs, with a semi-infinite (Warburg) or a CPE (blocking / non-ideal diffusion) tail, or
# none; and the pellet circuit (two arcs and the electrode CPE, no separate R0).
CANDIDATES: tuple[str, ...] = (
    "R0-p(R1,CPE1)",
    "R0-p(R1,CPE1)-W1",
    "R0-p(R1,CPE1)-CPE2",
    "R0-p(R1,CPE1)-p(R2,CPE2)",
    "R0-p(R1,CPE1)-p(R2,CPE2)-W1",
    "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3",
    "p(R1,CPE1)-p(R2,CPE2)-CPE3",
)
MAX_SPECTRA = 3  # the circuit is chosen on the first, middle and last spectrum


@dataclass
class Candidate:
    circuit: str
    bic: float
    median_chi_square: float
    n_parameters: int
    n_spectra_not_identifiable: int
    fits_failed: int

    def as_dict(self) -> dict:
        return {"circuit": self.circuit, "bic": self.bic,
                "median_chi_square": self.median_chi_square,
                "n_parameters": self.n_parameters,
                "n_spectra_not_identifiable": self.n_spectra_not_identifiable,
                "fits_failed": self.fits_failed}


def bic(chi_square: float, n_points: int, n_parameters: int) -> float:
    """BIC of one weighted least-squares fit of `n_points` complex points."""
    n = 2 * n_points
    return n * math.log(max(chi_square, 1e-300) / n) + n_parameters * math.log(n)


def chosen_spectra(n: int) -> list[int]:
    """Indices of up to MAX_SPECTRA spectra spread over the run."""
    return sorted(set(np.linspace(0, n - 1, min(n, MAX_SPECTRA)).round().astype(int).tolist()))


def inductive(frequency_hz: np.ndarray, z: np.ndarray) -> bool:
    """Z'' > 0 at the top of the band: the cell leads' inductance is in the spectrum."""
    f, z = np.asarray(frequency_hz, float), np.asarray(z, complex)
    top = f >= np.quantile(f, 0.9)
    return bool(np.any(z.imag[top] > 0))


def choose_circuit(arrays: Sequence[tuple[np.ndarray, np.ndarray]], *,
                   candidates: Sequence[str] | None = None, weighting: str = "modulus"
                   ) -> tuple[str, list[Candidate]]:
    """The best candidate for (frequency_hz, z) spectra, and every candidate's score
    (best first). Default candidates: CANDIDATES, and each with a series inductor `L0`
    too when the spectra turn inductive at their highest frequencies (cables and leads;
    without it those points alone spoil every fit)."""
    from labctl.analysis.eis.circuit import parse_circuit
    from labctl.analysis.eis.fit import fit_many
    from labctl.errors import LabctlError

    picked = [arrays[i] for i in chosen_spectra(len(arrays))]
    if candidates is None:
        candidates = list(CANDIDATES)
        if any(inductive(f, z) for f, z in picked):
            candidates += [f"L0-{c}" for c in CANDIDATES]
    # a BIC needs residual degrees of freedom: more real numbers than parameters
    values = 2 * min(len(f) for f, _ in picked)
    sizes = {c: parse_circuit(c).n_parameters for c in candidates}
    candidates = [c for c in candidates if sizes[c] < values]
    if not candidates:
        smallest = min(sizes, key=sizes.get)
        raise LabctlError(f"--circuit auto: a spectrum of {values // 2} points is too few for "
                          f"any candidate (the smallest, {smallest!r}, has {sizes[smallest]} "
                          f"parameters); give --circuit with fewer, e.g. 'R0-p(R1,C1)'")
    scored: list[Candidate] = []
    for circuit in candidates:
        fits = fit_many(picked, circuit, weighting=weighting)
        ok = [f for f in fits if f.success and np.isfinite(f.chi_square)]
        k = len(fits[0].parameter_names)
        total = (sum(bic(f.chi_square, len(f.frequency_hz), k) for f in ok)
                 if len(ok) == len(fits) else math.inf)
        flagged = sum(bool(f.not_identifiable is not None and f.not_identifiable.any())
                      for f in fits)
        scored.append(Candidate(circuit, float(total), float(np.median([f.chi_square
                                                                           for f in fits])),
                                k, flagged, len(fits) - len(ok)))
    scored.sort(key=lambda c: (2 * c.n_spectra_not_identifiable > len(picked), c.bic))
    return scored[0].circuit, scored
