"""Impedance spectroscopy analysis: circuits, fitting, Lin-KK, conductivity, files, plots.

The entry point is `analyze_spectra`; the parts are usable on their own. See docs/eis.md.
"""

from labctl.lazy import lazy_names

# Names load from their modules on first use (labctl/lazy.py).
__getattr__, __dir__ = lazy_names(__name__, {
    **dict.fromkeys(("EisAnalysis", "analyze_spectra"), "labctl.analysis.eis.analysis"),
    **dict.fromkeys(("Circuit", "parse_circuit"), "labctl.analysis.eis.circuit"),
    **dict.fromkeys(("ArrheniusResult", "PelletConductivity", "arrhenius_fit",
                     "conductivity_s_per_cm", "pellet_conductivity"),
                    "labctl.analysis.eis.conductivity"),
    **dict.fromkeys(("FitResult", "chi_square", "fit_many", "fit_spectrum"),
                    "labctl.analysis.eis.fit"),
    "initial_guess": "labctl.analysis.eis.guess",
    **dict.fromkeys(("SpectrumFile", "read_spectrum", "read_spectrum_file",
                     "write_spectrum_csv"), "labctl.analysis.eis.io"),
    **dict.fromkeys(("LinKKResult", "lin_kk"), "labctl.analysis.eis.linkk"),
})

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
