"""Every impedance layout impedance.py's readFile reads (its example files, in
tests/data/eis/) imports into a `spectra` record table, the same spectrum the EIS
reader finds (EC-Lab .mpt is read by labctl's own EC-Lab reader: a cross-check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl import open_run
from labctl.analysis.eis.io import read_spectrum_file
from labctl.importers.api import import_file

DATA = Path(__file__).resolve().parents[1] / "data" / "eis"
FILES = sorted(p for p in DATA.glob("*/*") if p.suffix.lower() in (
    ".csv", ".txt", ".mpt", ".dta", ".par", ".z") and "MissingFreq" not in p.name)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_spectrum_file_imports_as_spectra(path, tmp_path):
    want = read_spectrum_file(path).spectrum
    r = import_file(path, tmp_path)
    assert r.format in ("eis", "biologic-mpt")
    spectra = open_run(r.path).records("spectra")
    got = spectra[spectra.step_index == spectra.step_index.min()]
    np.testing.assert_allclose(got.frequency_hz, want.frequency_hz, rtol=1e-6)
    np.testing.assert_allclose(got.z_real_ohm, want.z_real_ohm, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got.z_imag_ohm, want.z_imag_ohm, rtol=1e-6, atol=1e-12)


def test_the_example_files_are_there():
    assert len(FILES) >= 10
