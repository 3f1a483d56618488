"""Every layout impedance.py's preprocessing.readFile accepts, read from its own example files.

The files are impedance.py's (MIT, tests/data/eis/impedance_py/SOURCE.md). Truth: the
numbers impedance.py's reader returns for the same file, and each file's first data
row as written in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl.analysis.eis import read_spectrum_file
from labctl.errors import ValidationError

DATA = Path(__file__).resolve().parents[2] / "data" / "eis" / "impedance_py"

# file, impedance.py instrument name, our layout, (f, Z', Z'') of the first sweep row.
FILES = [
    ("exampleData.csv", None, "headerless", (3.1623e-3, 4.949989776405060160e-02,
                                             -2.043869854441892481e-02)),
    ("exampleDataAutolab.txt", "autolab", "autolab", (10000, 0.013785863964281,
                                                      0.007191946305823)),
    ("exampleDataBioLogic.mpt", "biologic", "biologic", None),
    ("exampleDataCHInstruments.txt", "chinstruments", "chinstruments",
     (9.961e4, 9.891e1, -2.748e0)),
    ("exampleDataGamry.DTA", "gamry", "gamry", None),
    ("exampleDataGamryABORT.DTA", "gamry", "gamry", None),
    ("exampleDataParstat.txt", "parstat", "parstat", (10000, -0.00049816280376104,
                                                      0.0175143479976367)),
    ("exampleDataPowersuite.txt", "powersuite", "powersuite", (0.1, 423929.46, -49014.063)),
    ("exampleDataVersaStudio.par", "versastudio", "versastudio", (100000, 55.31571, 4.575431)),
    ("exampleDataZPlot.z", "zplot", "zview", None),
    ("exampleDataZPlot_noComments.z", "zplot", "zplot", (3.0e5, 6.4262e2, -8.5821e1)),
]


@pytest.mark.parametrize("name,instrument,layout,first", FILES, ids=[f[0] for f in FILES])
def test_reads_what_impedance_py_reads(name, instrument, layout, first):
    from impedance.preprocessing import readFile

    got = read_spectrum_file(DATA / name)
    assert got.layout == layout
    s = got.spectrum
    f_ref, z_ref = readFile(str(DATA / name), instrument)
    np.testing.assert_allclose(s.frequency_hz, f_ref, rtol=1e-12)
    np.testing.assert_allclose(s.z_real_ohm, z_ref.real, rtol=1e-12)
    np.testing.assert_allclose(s.z_imag_ohm, z_ref.imag, rtol=1e-12)
    if first is not None:
        np.testing.assert_allclose([s.frequency_hz[0], s.z_real_ohm[0], s.z_imag_ohm[0]], first,
                                   rtol=1e-4)


def test_parstat_dc_rows_are_not_part_of_the_sweep():
    s = read_spectrum_file(DATA / "exampleDataParstat.txt").spectrum
    text = (DATA / "exampleDataParstat.txt").read_text().splitlines()[1:]
    swept = [ln for ln in text if ln.strip() and float(ln.split("\t")[3]) != 0]
    assert len(s.frequency_hz) == len(swept) == 31
    assert np.all(s.frequency_hz > 0)


def test_biologic_file_without_frequency_column_is_a_located_error():
    with pytest.raises(ValidationError) as err:
        read_spectrum_file(DATA / "exampleDataBioLogic_MissingFreq.mpt")
    msg = str(err.value)
    assert "exampleDataBioLogic_MissingFreq.mpt:61" in msg and "no frequency column" in msg


def test_biologic_mpr_peis_through_galvani(tmp_path):
    pytest.importorskip("galvani", reason="the optional extra labctl[mpr] is not installed")
    from tests.analysis.eis.mpr_writer import write_mpr
    from tests.analysis.eis.synth_eis import CASES, F_60

    truth, model = CASES["R0-p(R1,CPE1)-W1"]
    z = model(truth)
    # A sequence's wait part (frequency 0) before the sweep is not a spectrum point.
    f = np.r_[0.0, F_60]
    zz = np.r_[0.0 + 0.0j, z]
    got = read_spectrum_file(write_mpr(tmp_path / "peis.mpr", f, zz))
    assert got.layout == "biologic-mpr" and got.imag_negated
    s = got.spectrum
    np.testing.assert_allclose(s.frequency_hz, F_60.astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(s.z_real_ohm + 1j * s.z_imag_ohm, z, rtol=2e-7)


def test_mpr_without_impedance_columns_or_garbage_is_a_located_error(tmp_path):
    pytest.importorskip("galvani", reason="the optional extra labctl[mpr] is not installed")
    from tests.analysis.eis.mpr_writer import write_mpr

    cv = write_mpr(tmp_path / "cv.mpr", [1.0, 2.0], [1 + 1j, 2 + 2j], columns=(4, 6))
    with pytest.raises(ValidationError, match="not a PEIS/GEIS"):
        read_spectrum_file(cv)
    junk = tmp_path / "junk.mpr"
    junk.write_bytes(b"not an mpr file at all")
    with pytest.raises(ValidationError) as err:
        read_spectrum_file(junk)
    assert str(junk) in str(err.value) and "galvani" in str(err.value)
