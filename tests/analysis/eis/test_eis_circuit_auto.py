"""`--circuit auto` on spectra of known circuits (closed forms in synth_eis, noise 0.5 %):
it picks the circuit that made them, and that fit gives the true resistances."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.analysis.eis.fit import fit_spectrum
from labctl.analysis.eis.select import bic, choose_circuit
from tests.analysis.eis.synth_eis import (
    ARC_WARBURG,
    CASES,
    F_60,
    noisy,
    q_for,
    z_arc_warburg,
    z_cpe,
    z_inductor,
    z_r_cpe,
)

# A tail that is not 45 degrees (blocking electrode / non-ideal diffusion): the CPE tail.
ARC_CPE_TAIL = {"R0": 3.0, "R1": 40.0, "CPE1_0": q_for(40.0, 2e-4, 0.9), "CPE1_1": 0.9,
                "CPE2_0": 0.02, "CPE2_1": 0.78}


def _z_arc_cpe_tail(p, f=F_60):
    return (p["R0"] + z_r_cpe(p["R1"], p["CPE1_0"], p["CPE1_1"], f)
            + z_cpe(p["CPE2_0"], p["CPE2_1"], f))


# Leads of 0.2 uH: Z'' > 0 above ~30 kHz, as in impedance.py's exampleData.csv.
LEADS = {**ARC_WARBURG, "L0": 2e-7}


def _z_leads_arc_warburg(p, f=F_60):
    return z_inductor(p["L0"], f) + z_arc_warburg(p, f)


TRUTHS = {**CASES, "R0-p(R1,CPE1)-CPE2": (ARC_CPE_TAIL, _z_arc_cpe_tail),
          "L0-R0-p(R1,CPE1)-W1": (LEADS, _z_leads_arc_warburg)}


@pytest.mark.parametrize("circuit", sorted(TRUTHS))
@pytest.mark.parametrize("seed", [1, 2])
def test_auto_picks_the_circuit_that_made_the_spectrum(circuit, seed):
    truth, model = TRUTHS[circuit]
    z = noisy(model(truth), 0.005, seed)
    chosen, scored = choose_circuit([(F_60, z)])
    assert chosen == circuit, [(c.circuit, round(c.bic, 1)) for c in scored]
    fit = fit_spectrum(F_60, z, chosen).as_dict()
    for name in (n for n in truth if n.startswith("R")):
        assert fit[name] == pytest.approx(truth[name], rel=0.05)


def test_inductive_points_bring_the_l0_candidates():
    truth, model = TRUTHS["R0-p(R1,CPE1)-W1"]
    _, plain = choose_circuit([(F_60, noisy(model(truth), 0.005, 1))])
    assert not any(c.circuit.startswith("L0-") for c in plain)
    _, leads = choose_circuit([(F_60, noisy(_z_leads_arc_warburg(LEADS), 0.005, 1))])
    assert sum(c.circuit.startswith("L0-") for c in leads) == len(plain)


def test_bic_penalises_parameters_and_rewards_fit():
    assert bic(1.0, 60, 5) < bic(1.0, 60, 6)  # same chi2, one more parameter
    assert bic(0.5, 60, 6) < bic(1.0, 60, 5)  # chi2 halved is worth one parameter
    assert bic(1.0, 60, 5) - bic(1.0, 60, 4) == pytest.approx(np.log(120))


def test_a_spectrum_file_is_fitted_with_the_chosen_circuit(tmp_path):
    from labctl.analysis.eis.command import eis_command

    truth, model = TRUTHS["R0-p(R1,CPE1)-CPE2"]
    z = noisy(model(truth), 0.005, 7)
    f = tmp_path / "foreign.csv"
    f.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n" + "\n".join(
        f"{a:.10g},{b.real:.10g},{b.imag:.10g}" for a, b in zip(F_60, z, strict=True)) + "\n")
    res = CliRunner().invoke(eis_command(), [str(f), "--no-plots", "--results",
                                             str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    assert "circuit chosen among 7 by BIC: R0-p(R1,CPE1)-CPE2" in res.output


def test_too_few_points_for_any_candidate_is_a_clear_error():
    from labctl.errors import LabctlError

    truth, model = TRUTHS["R0-p(R1,CPE1)-W1"]
    f = F_60[::20]  # 3 points: 6 numbers, only the 4- and 5-parameter circuits qualify
    chosen, scored = choose_circuit([(f, model(truth, f))])
    assert {c.n_parameters for c in scored} == {4, 5}
    with pytest.raises(LabctlError, match="too few for any candidate"):
        choose_circuit([(F_60[:1], model(truth, F_60[:1]))])
