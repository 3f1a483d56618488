"""The abuse presets reproduce the seed facts through the whole chain: steps, simulator, analysis.

Seed facts (../shared/seed-facts.md): ARC self-heating onset ~90 °C with a liquid electrolyte vs
~247 °C with a solid one, the solid cell self-heating more slowly; DSC exotherms at 315 °C and
407 °C for the polymer cell; a ~185 °C endotherm (Li melting) with LLZO and two exotherms above
230 °C; an all-solid-state cell releases 20-30 % of the liquid cell's heat; a higher SoC gives
an earlier runaway.
"""

from __future__ import annotations

import pytest

from labctl.analysis.abuse import analyze_run
from tests.abuse.abuse_helpers import REPO, run, station

ARC = REPO / "procedures" / "arc-hws.yaml"
DSC = REPO / "procedures" / "dsc-ramp.yaml"


def _arc(tmp_path, preset, start, soc=1.0):
    st = station(tmp_path, preset=preset, soc=soc)
    out, r = run(ARC, st, tmp_path, params={"start_c": str(start)})
    assert out.status == "completed", out.reason
    return analyze_run(r, plots=False)


def _dsc(tmp_path, preset):
    st = station(tmp_path, preset=preset)
    out, r = run(DSC, st, tmp_path)
    assert out.status == "completed", out.reason
    return analyze_run(r, plots=False)


@pytest.fixture(scope="module")
def dsc_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dsc")
    return {p: _dsc(tmp, p) for p in ("liquid-li-ion", "llzo-li-metal", "peo-polymer-li")}


def test_arc_onsets_liquid_vs_solid(tmp_path):
    liquid = _arc(tmp_path, "liquid-li-ion", 70)
    solid = _arc(tmp_path, "llzo-li-metal", 225)
    assert liquid["onset_c"] == pytest.approx(90, abs=5)
    assert solid["onset_c"] == pytest.approx(247, abs=5)
    assert solid["max_self_heating_c_per_min"] < 0.2 * liquid["max_self_heating_c_per_min"]


def test_higher_soc_runs_away_earlier(tmp_path):
    full = _arc(tmp_path, "liquid-li-ion", 70, soc=1.0)
    half = _arc(tmp_path, "liquid-li-ion", 70, soc=0.5)
    assert half["onset_c"] > full["onset_c"] + 5


def test_polymer_dsc_exotherms(dsc_results):
    peo = dsc_results["peo-polymer-li"]
    assert peo["exotherm_peaks_c"] == pytest.approx([315, 407], abs=5)
    assert any(abs(x - 185) <= 5 for x in peo["endotherm_peaks_c"])


def test_llzo_endotherm_and_two_exotherms(dsc_results):
    llzo = dsc_results["llzo-li-metal"]
    endo = [x for x in llzo["endotherm_peaks_c"] if x < 230]
    assert endo == [pytest.approx(185, abs=5)]
    exo = [x for x in llzo["exotherm_peaks_c"] if x > 230]
    assert len(exo) == 2


def test_heat_of_solid_cells_relative_to_liquid(dsc_results):
    liquid = dsc_results["liquid-li-ion"]["total_heat_j"]
    solid = dsc_results["llzo-li-metal"]["total_heat_j"]
    polymer = dsc_results["peo-polymer-li"]["total_heat_j"]
    assert 0.20 <= solid / liquid <= 0.30
    # "the liquid-electrolyte cell releases about twice the total heat" of the polymer cell
    assert 0.4 <= polymer / liquid <= 0.65
