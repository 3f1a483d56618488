"""Impedance spectroscopy analysis: circuits, fitting, Lin-KK, conductivity, files, plots.

The entry point is `analyze_spectra`; the parts are usable on their own. See docs/eis.md.
"""

from labctl.analysis.eis.analysis import EisAnalysis, analyze_spectra
from labctl.analysis.eis.circuit import Circuit, parse_circuit
from labctl.analysis.eis.conductivity import (
    ArrheniusResult,
    PelletConductivity,
    arrhenius_fit,
    conductivity_s_per_cm,
    pellet_conductivity,
)
from labctl.analysis.eis.fit import FitResult, chi_square, fit_many, fit_spectrum
from labctl.analysis.eis.guess import initial_guess
from labctl.analysis.eis.io import (
    SpectrumFile,
    read_spectrum,
    read_spectrum_file,
    write_spectrum_csv,
)
from labctl.analysis.eis.linkk import LinKKResult, lin_kk

__all__ = [
    "ArrheniusResult",
    "Circuit",
    "EisAnalysis",
    "FitResult",
    "LinKKResult",
    "PelletConductivity",
    "SpectrumFile",
    "analyze_spectra",
    "arrhenius_fit",
    "chi_square",
    "conductivity_s_per_cm",
    "fit_many",
    "fit_spectrum",
    "initial_guess",
    "lin_kk",
    "parse_circuit",
    "pellet_conductivity",
    "read_spectrum",
    "read_spectrum_file",
    "write_spectrum_csv",
]
