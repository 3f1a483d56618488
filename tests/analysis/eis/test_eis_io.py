"""Spectrum files: every accepted layout reads to the same numbers; bad rows are located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl.analysis.eis import read_spectrum, read_spectrum_file, write_spectrum_csv
from labctl.capabilities.potentiostat import Spectrum
from labctl.errors import LabctlError, ValidationError
from tests.analysis.eis.synth_eis import CASES

F = np.array([1.0e5, 1.0e3, 10.0, 0.1])
TRUTH, MODEL = CASES["R0-p(R1,CPE1)-W1"]
Z = MODEL(TRUTH, F)  # capacitive: Im Z < 0 everywhere


def _rows(fmt="{:.10e}", imag_sign=1.0, extra=(), sep=","):
    return [sep.join([fmt.format(f), fmt.format(z.real), fmt.format(imag_sign * z.imag),
                      *extra]) for f, z in zip(F, Z, strict=True)]


def _ec_lab(path: Path, preamble: bool) -> Path:
    header = "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\t|Z|/Ohm\tPhase(Z)/deg\ttime/s"
    rows = [f"{f:.10e}\t{z.real:.10e}\t{-z.imag:.10e}\t{abs(z):.6e}\t"
            f"{np.degrees(np.angle(z)):.4f}\t{i * 10.0:.3f}"
            for i, (f, z) in enumerate(zip(F, Z, strict=True))]
    lines = [header, *rows]
    if preamble:
        # "Nb header lines : 5" counts the column-name line as the 5th.
        pre = ["EC-Lab ASCII FILE", "Nb header lines : 5", "",
               "Potentio Electrochemical Impedance Spectroscopy"]
        lines = pre + lines
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    return path


def _gamry_dta(path: Path) -> Path:
    head = ["EXPLAIN", "TAG\tEISPOT", "TITLE\tLABEL\tPotentiostatic EIS\tTest &Identifier",
            "ZCURVE\tTABLE",
            "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz\tIdc\tVdc\tIERange",
            "\t#\ts\tHz\tohm\tohm\tV\tohm\t°\tA\tV\t#"]
    rows = [f"\t{i}\t{i * 2}\t{f:.10e}\t{z.real:.10e}\t{z.imag:.10e}\t1\t{abs(z):.6e}\t"
            f"{np.degrees(np.angle(z)):.4f}\t1e-9\t0.001\t5"
            for i, (f, z) in enumerate(zip(F, Z, strict=True))]
    path.write_text("\n".join(head + rows + ["EXPERIMENTABORTED\tLABEL\tno"]) + "\n",
                    encoding="cp1252")
    return path


def _zview_z(path: Path) -> Path:
    head = ["ZPlot2 ASCII", "Sweep Frequency Control", "Date: 01-01-2026", "End Comments"]
    rows = [f"{f:.10e}, 0.01, 0, {i:.1f}, {z.real:.10e}, {z.imag:.10e}, 0, 0, 1"
            for i, (f, z) in enumerate(zip(F, Z, strict=True))]
    path.write_text("\n".join(head + rows) + "\n", encoding="utf-8")
    return path


LAYOUTS = {
    "generic": (lambda p: p.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n"
                                       + "\n".join(_rows()) + "\n"), "generic", False,
                "header"),
    "generic, minus sign, extra column, comment": (
        lambda p: p.write_text("# exported by hand\nFrequency (Hz),Z' (Ohm),-Z'' (Ohm),note\n"
                               + "\n".join(_rows(imag_sign=-1, extra=("x",))) + "\n"),
        "generic", True, "header"),
    "headerless, Im Z": (lambda p: p.write_text("\n".join(_rows(sep=" ")) + "\n"),
                         "headerless", False, "detected"),
    "headerless, -Im Z": (lambda p: p.write_text("\n".join(_rows(imag_sign=-1, sep="\t"))
                                                 + "\n"), "headerless", True, "detected"),
    "semicolons, decimal comma": (
        lambda p: p.write_text("Freq;Zreal;Zimag\n" + "\n".join(
            r.replace(".", ",") for r in _rows(sep=";")) + "\n"), "gamry", False, "header"),
    "ambiguous Z'' header holding -Im": (
        lambda p: p.write_text("freq,Z',Z''\n" + "\n".join(_rows(imag_sign=-1)) + "\n"),
        "generic", True, "detected"),
    "EC-Lab with preamble": (lambda p: _ec_lab(p, True), "biologic", True, "header"),
    "EC-Lab text export": (lambda p: _ec_lab(p, False), "biologic", True, "header"),
    "Gamry DTA": (_gamry_dta, "gamry", False, "header"),
    "Gamry CSV": (lambda p: p.write_text("Pt,Freq,Zreal,Zimag\n" + "\n".join(
        f"{i},{r}" for i, r in enumerate(_rows())) + "\n"), "gamry", False, "header"),
    "ZView .z": (_zview_z, "zview", False, "header"),
    "ZView CSV": (lambda p: p.write_text("Freq(Hz),Z'(a),Z''(b)\n" + "\n".join(_rows())
                                         + "\n"), "zview", False, "header"),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_layout_reads_the_same_numbers(tmp_path, name):
    write, layout, negated, sign_from = LAYOUTS[name]
    path = tmp_path / "spectrum.txt"
    write(path)
    got = read_spectrum_file(path)
    assert got.layout == layout
    assert got.imag_negated == negated
    assert got.imag_sign_from == sign_from
    s = got.spectrum
    assert isinstance(s, Spectrum)
    np.testing.assert_allclose(s.frequency_hz, F, rtol=1e-9)
    np.testing.assert_allclose(s.z_real_ohm, Z.real, rtol=1e-9)
    np.testing.assert_allclose(s.z_imag_ohm, Z.imag, rtol=1e-9)
    assert np.all(s.z_imag_ohm < 0)


def test_write_then_read_is_exact(tmp_path):
    s = Spectrum(F, Z.real, Z.imag)
    p = write_spectrum_csv(tmp_path / "out.csv", s)
    assert p.read_text().splitlines()[0] == "frequency_hz,z_real_ohm,z_imag_ohm"
    back = read_spectrum(p)
    assert np.array_equal(back.frequency_hz, F)
    assert np.array_equal(back.z_real_ohm, Z.real)
    assert np.array_equal(back.z_imag_ohm, Z.imag)


def test_imag_argument_overrides(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("\n".join(_rows()) + "\n")
    s = read_spectrum_file(p, imag="minus_im")
    assert s.imag_sign_from == "argument"
    np.testing.assert_allclose(s.spectrum.z_imag_ohm, -Z.imag, rtol=1e-9)
    with pytest.raises(ValidationError, match="allowed"):
        read_spectrum(p, imag="negative")


def _bad(tmp_path, text):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValidationError) as err:
        read_spectrum(p)
    assert isinstance(err.value, LabctlError)
    return p, err.value.problems


HEADER = "frequency_hz,z_real_ohm,z_imag_ohm\n"


@pytest.mark.parametrize(("body", "line", "column", "words"), [
    ("1000,10.5,-3.2\n100,abc,-4.0\n", 3, 5, "'abc' is not a number"),
    ("1000,10.5,-3.2\n100,12.0\n", 3, None, "expected 3 columns like the header on line 1"),
    ("1000,10.5,-3.2\n0,12.0,-4.0\n", 3, 1, "frequency must be > 0 Hz"),
    ("-5,10.5,-3.2\n", 2, 1, "frequency must be > 0 Hz"),
    ("1000,nan,-3.2\n", 2, 6, "every value must be finite"),
    ("1000,10.5,inf\n", 2, 11, "every value must be finite"),
])
def test_malformed_rows_name_file_line_and_column(tmp_path, body, line, column, words):
    p, problems = _bad(tmp_path, HEADER + body)
    prob = problems[0]
    assert prob.file == str(p)
    assert prob.line == line
    assert prob.column == column
    assert words in prob.message
    assert str(prob).startswith(f"{p}:{line}")


def test_every_bad_row_is_reported(tmp_path):
    _, problems = _bad(tmp_path, HEADER + "1,x,1\n2,3\n3,4,5\n0,1,1\n")
    assert [p.line for p in problems] == [2, 3, 5]


def test_unknown_header_lists_accepted_layouts(tmp_path):
    _, problems = _bad(tmp_path, "f,real,imag\n1,2,3\n")
    assert problems[0].line == 1
    assert "no frequency / real part column among ['f', 'real', 'imag']" in problems[0].message
    assert "freq/Hz, Re(Z)/Ohm, -Im(Z)/Ohm" in problems[0].message
    _, problems = _bad(tmp_path, "freq,Zreal,phase\n1,2,3\n")
    assert "no imaginary part column" in problems[0].message


def test_empty_and_header_only_files(tmp_path):
    _, problems = _bad(tmp_path, "# nothing here\n\n")
    assert "holds no data" in problems[0].message
    _, problems = _bad(tmp_path, HEADER)
    assert "no data rows" in problems[0].message


def test_headerless_file_needs_three_columns(tmp_path):
    _, problems = _bad(tmp_path, "1,2,3\n4,5,6,7\n")
    assert problems[0].line == 2
    assert "expected 3 columns" in problems[0].message


def test_ec_lab_header_count_past_the_end(tmp_path):
    _, problems = _bad(tmp_path, "EC-Lab ASCII FILE\nNb header lines : 90\n")
    assert problems[0].line == 2 and "past the end" in problems[0].message


def test_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="cannot read"):
        read_spectrum(tmp_path / "nope.csv")


def test_oversized_spectrum_file_is_refused_with_exit_2(tmp_path):
    # Issue 13 §3: a 2 M-point file took 86 s and 9.5 GB. Refused before fitting.
    import time

    from labctl.analysis.eis.io import MAX_FILE_BYTES, MAX_POINTS
    from tests.support import labctl_cmd

    f = np.logspace(6, -2, MAX_POINTS + 5)
    z = MODEL(TRUTH, f)
    path = tmp_path / "huge.csv"
    path.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n" + "".join(
        f"{a:.6e},{b.real:.6e},{b.imag:.6e}\n" for a, b in zip(f, z, strict=True)))
    with pytest.raises(ValidationError) as err:
        read_spectrum(path)
    text = str(err.value)
    assert str(path) in text and f":{MAX_POINTS + 2}:" in text and str(MAX_POINTS) in text
    started = time.monotonic()
    proc = labctl_cmd("analyze", "eis", str(path), "--no-plots")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and f"at most {MAX_POINTS}" in proc.stderr
    assert not (tmp_path / "huge-eis").exists()
    assert time.monotonic() - started < 60  # generous: a refused file is not fitted
    # A file beyond the byte cap is refused without being read.
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ValidationError, match="MiB"):
        read_spectrum(big)


def test_oversized_spectrum_in_memory_is_refused():
    from labctl.analysis.eis import analyze_spectra
    from labctl.analysis.eis.io import MAX_POINTS

    f = np.logspace(6, -2, MAX_POINTS + 1)
    with pytest.raises(LabctlError, match=f"at most {MAX_POINTS}"):
        analyze_spectra([(f, MODEL(TRUTH, f))], "R0-p(R1,CPE1)-W1")
