"""Circuit strings: parsing, parameter names, Z(omega) and the analytic Jacobian."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labctl.analysis.eis import parse_circuit
from labctl.errors import LabctlError, ValidationError
from tests.analysis.eis.synth_eis import (
    F_60,
    z_cpe,
    z_inductor,
    z_r_c,
    z_r_cpe,
    z_warburg,
    z_warburg_open,
    z_warburg_short,
)

F = np.logspace(6, -2, 41)


def test_names_and_units_follow_impedance_py():
    from impedance.models.circuits import CustomCircuit

    text = "R0-p(R1,CPE1)-p(R2-Wo1,C2)-W3-L4-Ws5"
    c = parse_circuit(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = CustomCircuit(text, initial_guess=[1.0] * 12).get_param_names()
    assert c.parameter_names == theirs
    assert dict(zip(c.parameter_names, c.parameter_units, strict=True)) == {
        "R0": "Ohm", "R1": "Ohm", "CPE1_0": "Ohm^-1 s^a", "CPE1_1": "1", "R2": "Ohm",
        "Wo1_0": "Ohm", "Wo1_1": "s", "C2": "F", "W3": "Ohm s^-1/2", "L4": "H",
        "Ws5_0": "Ohm", "Ws5_1": "s"}


def test_impedance_matches_closed_form_for_every_element():
    text = "R0-p(R1,CPE1)-p(R2,C2)-W3-L4-Wo5-Ws6-CPE7"
    p = [3.0, 40.0, 2e-6, 0.85, 90.0, 1e-4, 12.0, 2e-7, 30.0, 5.0, 50.0, 0.2, 1e-3, 0.7]
    expected = (3.0 + z_r_cpe(40.0, 2e-6, 0.85, F) + z_r_c(90.0, 1e-4, F) + z_warburg(12.0, F)
                + z_inductor(2e-7, F) + z_warburg_open(30.0, 5.0, F)
                + z_warburg_short(50.0, 0.2, F) + z_cpe(1e-3, 0.7, F))
    got = parse_circuit(text).impedance(F, p)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_nested_parallel_matches_closed_form():
    # Randles-type: R0 - (CPE1 || (R1 - W1)), and a parallel inside a parallel.
    p = [5.0, 1e-5, 0.9, 80.0, 20.0]
    expected = 5.0 + 1.0 / (1.0 / z_cpe(1e-5, 0.9, F) + 1.0 / (80.0 + z_warburg(20.0, F)))
    np.testing.assert_allclose(parse_circuit("R0-p(CPE1,R1-W1)").impedance(F, p), expected,
                               rtol=1e-12)
    p2 = [10.0, 1e-6, 50.0, 1e-4]
    inner = z_r_c(50.0, 1e-4, F)
    expected2 = 1.0 / (1.0 / 10.0 + 1.0 / (1.0 / (1j * 2 * np.pi * F * 1e-6) + inner))
    np.testing.assert_allclose(parse_circuit("p(R1,C1-p(R2,C2))").impedance(F, p2), expected2,
                               rtol=1e-12)


def test_agrees_with_impedance_py_on_a_large_circuit():
    from impedance.models.circuits import CustomCircuit

    text = "R0-p(R1,CPE1)-p(R2-Wo1,CPE2)-W3-L4"
    p = [10, 50, 1e-6, 0.9, 200, 100, 2.0, 1e-3, 0.8, 30, 1e-6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CustomCircuit(text, initial_guess=p).predict(F_60)
    np.testing.assert_allclose(parse_circuit(text).impedance(F_60, p), theirs, rtol=1e-10)


JACOBIAN_CASES = [
    ("R0", [7.0]),
    ("C0", [2e-6]),
    ("L0", [3e-6]),
    ("CPE0", [2e-5, 0.8]),
    ("W0", [15.0]),
    ("Wo0", [40.0, 3.0]),
    ("Ws0", [40.0, 3.0]),
    ("R0-p(R1,CPE1)-p(R2,C2)", [5.0, 30.0, 1e-6, 0.9, 100.0, 1e-3]),
    ("p(R1-Wo1,CPE1)-W2-L3", [50.0, 20.0, 0.5, 1e-5, 0.85, 10.0, 1e-7]),
    ("p(R1,p(C1,R2-Ws1),L1)", [80.0, 1e-6, 30.0, 25.0, 0.1, 1e-3]),
]


@pytest.mark.parametrize(("text", "p"), JACOBIAN_CASES, ids=[c[0] for c in JACOBIAN_CASES])
def test_analytic_jacobian_matches_finite_differences(text, p):
    c = parse_circuit(text)
    p = np.array(p, dtype=float)
    _, jac = c.impedance_and_jacobian(F, p)
    for k in range(len(p)):
        h = 1e-6 * p[k]
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        fd = (c.impedance(F, up) - c.impedance(F, dn)) / (2 * h)
        scale = np.max(np.abs(fd))
        assert scale > 0
        assert np.max(np.abs(jac[:, k] - fd)) <= 1e-6 * scale, c.parameter_names[k]


def test_finite_warburg_is_stable_at_extreme_frequencies():
    # sinh/cosh would overflow for |s| ~ 1000; the impedance must stay finite
    # and tend to its limits: Z0 / sqrt(j omega tau) at high frequency.
    f = np.array([1e9, 1e-6])
    c = parse_circuit("Wo0")
    z, jac = c.impedance_and_jacobian(f, [10.0, 100.0])
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(jac))
    s = np.sqrt(1j * 2 * np.pi * 1e9 * 100.0)
    assert z[0] == pytest.approx(10.0 / s, rel=1e-9)
    # Low frequency: open Warburg -> Z0 / (j omega tau) + Z0 / 3
    assert z[1] == pytest.approx(10.0 / (1j * 2 * np.pi * 1e-6 * 100.0) + 10.0 / 3, rel=1e-6)


def test_whitespace_is_ignored():
    a = parse_circuit("R0 - p( R1 , CPE1 )")
    assert a.parameter_names == ["R0", "R1", "CPE1_0", "CPE1_1"]


@pytest.mark.parametrize(("text", "column", "words"), [
    ("R0-p(R1,Q1)", 9, "unknown element 'Q'"),
    ("R0--R1", 4, "expected an element"),
    ("R0-p(R1,C1", 11, "close 'p(' opened at column 4"),
    ("R0-p(R1)", 8, "at least two branches"),
    ("R0-R0", 4, "'R0' is used twice"),
    ("R-C1", 1, "needs a number"),
    ("R0)", 3, "')' without 'p('"),
    ("", 1, "empty"),
    ("R0-p(R1,CPE1),R2", 14, "unexpected ','"),
])
def test_parse_errors_name_the_column_and_what_is_allowed(text, column, words):
    with pytest.raises(ValidationError) as err:
        parse_circuit(text)
    prob = err.value.problems[0]
    assert prob.column == column
    assert prob.field == "circuit"
    assert words in prob.message
    assert isinstance(err.value, LabctlError)


def test_parse_error_located_in_a_users_file():
    with pytest.raises(ValidationError) as err:
        parse_circuit("R0-X1", file="procedures/eis.yaml", line=12, column_offset=14)
    prob = err.value.problems[0]
    assert (prob.file, prob.line, prob.column) == ("procedures/eis.yaml", 12, 18)
    assert "allowed: R, C, L, CPE, W, Wo, Ws" in str(err.value)
    assert str(err.value).startswith("procedures/eis.yaml:12:18:")


def test_wrong_number_of_parameters_is_refused():
    with pytest.raises(ValidationError, match="takes 4 parameters"):
        parse_circuit("R0-p(R1,CPE1)").impedance(F, [1.0, 2.0])
