"""Regenerate reference_fits.json: impedance.py's CustomCircuit.fit on the measured spectra.

For every spectrum in REAL (tests/analysis/eis/test_eis_real_spectra.py lists the same),
the circuit R0-p(R1,CPE1)-p(R2,CPE2) is fitted by impedance.py (weight_by_modulus=True,
the objective labctl minimises) from two starts -- its documentation's example values and
a start scaled to the spectrum (R0 = smallest Z', R1 = R2 = half the Z' span, Q = 1e-3,
alpha = 0.8) -- and the lower chi2 of the two is stored. Points with Im Z > 0
(inductive) are dropped first, as impedance.py's `ignoreBelowX` does.

    python tests/data/eis/make_reference_fits.py
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from labctl.analysis.eis import chi_square, read_spectrum  # noqa: E402

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)"
REAL = ["impedance_py/exampleData.csv", "impedance_py/exampleDataAutolab.txt",
        "impedance_py/exampleDataBioLogic.mpt", "impedance_py/exampleDataCHInstruments.txt",
        "impedance_py/exampleDataGamry.DTA", "impedance_py/exampleDataParstat.txt",
        "impedance_py/exampleDataPowersuite.txt", "impedance_py/exampleDataVersaStudio.par",
        "impedance_py/exampleDataZPlot.z", "impedance_py/exampleDataZPlot_noComments.z",
        "pydrttools/LIB_data.txt", "pydrttools/LIB_data_2.txt"]
DOC_GUESS = [0.01, 0.005, 0.1, 0.9, 0.005, 0.1, 0.9]


def capacitive(path: Path):
    s = read_spectrum(path)
    z = s.z_real_ohm + 1j * s.z_imag_ohm
    keep = z.imag < 0
    return s.frequency_hz[keep], z[keep]


def main() -> None:
    from impedance.models.circuits import CustomCircuit

    out = {}
    for name in REAL:
        f, z = capacitive(HERE / name)
        span = float(z.real.max() - z.real.min())
        scaled = [float(z.real.min()), span / 2, 1e-3, 0.8, span / 2, 1e-3, 0.8]
        best = None
        for guess in (DOC_GUESS, scaled):
            cc = CustomCircuit(CIRCUIT, initial_guess=guess)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    cc.fit(f, z, weight_by_modulus=True)
                except Exception:
                    continue
            chi = chi_square(z, cc.predict(f))
            if best is None or chi < best[0]:
                best = (chi, list(map(float, cc.parameters_)), guess)
        out[name] = {"circuit": CIRCUIT, "n_points": int(len(f)), "chi_square": best[0],
                     "parameters": best[1], "initial_guess": best[2]}
        print(name, best[0])
    (HERE / "reference_fits.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
