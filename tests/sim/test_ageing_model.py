"""The simulated cell's ageing against the closed forms written out here (not the model's own)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from labctl.capabilities import LoggingPolicy
from labctl.capabilities.steps import ElectricalStep, EndCondition, Mode, Quantity
from labctl.cells.ageing_spec import AgeingParams
from labctl.cells.load import load_cell
from labctl.errors import ValidationError
from labctl.sim.ageing import AgeingModel, AgeingState
from tests.sim.helpers import channel, joined, linear_cell, run

K_B_EV = 8.617333262e-5
K_CYC, N0 = 0.01, 200.0


def expected_loss(k: float, x: float, x0: float) -> float:
    return k * (math.sqrt(x + x0) - math.sqrt(x0))


def arrhenius(ea_ev: float, t_c: float, ref_c: float = 25.0) -> float:
    return math.exp(ea_ev / K_B_EV * (1 / (ref_c + 273.15) - 1 / (t_c + 273.15)))


def test_fade_follows_the_sqrt_law_under_constant_conditions():
    p = AgeingParams(cycle_fade_per_sqrt_efc=K_CYC, cycle_offset_efc=N0)
    m = AgeingModel(p, 2.0)
    s = AgeingState()
    # 800 full cycles (1.6 Ah in, 1.6 Ah out... in 4 Ah throughput units) at 25 °C, 1C,
    # added in uneven pieces: the sum must not depend on how the throughput was cut.
    pieces = np.random.default_rng(1).uniform(0.1, 3.0, 3000)
    pieces *= 800 * 4.0 / pieces.sum()
    for dq in pieces:
        m.advance(s, duration_s=0.0, temperature_c=25.0, soc=0.5, throughput_ah=float(dq))
    assert s.throughput_ah == pytest.approx(3200.0)
    assert 1 - m.capacity_fraction(s) == pytest.approx(expected_loss(K_CYC, 800, N0), rel=1e-9)
    # ...and the loss grows like sqrt(N) once far past the offset.
    m.advance(s, duration_s=0.0, temperature_c=25.0, soc=0.5, throughput_ah=4.0 * 99_200)
    assert m.cycle_loss(s) == pytest.approx(K_CYC * (math.sqrt(100_000 + N0) - math.sqrt(N0)),
                                            rel=1e-9)


def test_45c_ages_faster_by_the_arrhenius_factor():
    ea = 0.33
    p = AgeingParams(cycle_fade_per_sqrt_efc=K_CYC, cycle_offset_efc=N0,
                     cycle_activation_energy_ev=ea)
    m = AgeingModel(p, 2.0)
    f = arrhenius(ea, 45.0)
    assert f == pytest.approx(2.24, abs=0.01)  # 0.33 eV between 25 and 45 °C
    cold, hot = AgeingState(), AgeingState()
    m.advance(cold, duration_s=0, temperature_c=25.0, soc=0.5, throughput_ah=4.0 * 500)
    m.advance(hot, duration_s=0, temperature_c=45.0, soc=0.5, throughput_ah=4.0 * 500)
    assert 1 - m.capacity_fraction(hot) == pytest.approx(expected_loss(K_CYC, f * 500, N0),
                                                         rel=1e-9)
    # The same loss takes 1/f as many cycles at 45 °C.
    assert m.cycles_to(0.9, 45.0) == pytest.approx(m.cycles_to(0.9, 25.0) / f, rel=1e-12)
    # Calendar ageing: sqrt of days, Arrhenius with its own activation energy.
    pc = AgeingParams(calendar_fade_per_sqrt_day=0.002, calendar_offset_days=30,
                      calendar_activation_energy_ev=0.5, calendar_soc_coefficient=0.0)
    mc = AgeingModel(pc, 2.0)
    s25, s45 = AgeingState(), AgeingState()
    mc.advance(s25, duration_s=365 * 86400.0, temperature_c=25.0, soc=0.9)
    mc.advance(s45, duration_s=365 * 86400.0, temperature_c=45.0, soc=0.9)
    assert 1 - mc.capacity_fraction(s25) == pytest.approx(expected_loss(0.002, 365, 30), rel=1e-9)
    assert 1 - mc.capacity_fraction(s45) == pytest.approx(
        expected_loss(0.002, 365 * arrhenius(0.5, 45.0), 30), rel=1e-9)


def test_resistance_grows_with_the_fade():
    p = AgeingParams(cycle_fade_per_sqrt_efc=K_CYC, resistance_growth_per_fade=2.0)
    m = AgeingModel(p, 2.0)
    s = AgeingState(cycle_efc_eq=1000.0)
    loss = expected_loss(K_CYC, 1000, 200)
    assert m.resistance_factor(s) == pytest.approx(1 + 2.0 * loss)


# -- in the simulator -----------------------------------------------------------------------

ISOTHERMAL = dict(cycle_activation_energy_ev=0.0, calendar_fade_per_sqrt_day=0.0,
                  c_rate_coefficient_per_c=0.0)


def aged_cell(acceleration: float = 1.0, growth: float = 0.0):
    cell = linear_cell(3.0, 1.0, r0=0.02, capacity_ah=2.0)
    ageing = AgeingParams(cycle_fade_per_sqrt_efc=K_CYC, cycle_offset_efc=N0,
                          resistance_growth_per_fade=growth, acceleration=acceleration,
                          **ISOTHERMAL)
    return replace(cell, model=replace(cell.model, ageing=ageing))


CHARGE = ElectricalStep(Mode.CURRENT, 2.0, until=(EndCondition(Quantity.VOLTAGE, ">=", 3.9),),
                        logging=LoggingPolicy(period_s=30.0))
DISCHARGE = ElectricalStep(Mode.CURRENT, -2.0, until=(EndCondition(Quantity.VOLTAGE, "<=", 3.1),),
                           logging=LoggingPolicy(period_s=30.0))


def cycle(ch) -> tuple[float, float]:
    """One CC charge and discharge; (charge moved in, charge moved out) from the samples."""
    qin = joined(run(ch, CHARGE)[0])["charge_ah"][-1]
    qout = joined(run(ch, DISCHARGE)[0])["discharge_ah"][-1]
    return float(qin), float(qout)


def test_simulated_capacity_fades_as_the_closed_form_says():
    ch = channel(aged_cell(acceleration=20.0))
    ch.set_state({**ch.get_state(), "soc": 0.1})
    moved, caps, first_charge = 0.0, [], None
    for _ in range(12):
        qin, qout = cycle(ch)
        first_charge = qin if first_charge is None else first_charge
        moved += qin + qout
        caps.append(qout)
    # Expected from the charge the test counted itself: EFC = throughput / (2 Q_nominal).
    efc = moved / (2 * 2.0)
    expected = 1 - expected_loss(K_CYC, 20.0 * efc, N0)
    assert ch.ageing_summary()["capacity_fraction"] == pytest.approx(expected, rel=1e-9)
    # The capacity the cycler measures falls with it: on this linear cell the 2 A
    # window between 3.9 V and 3.1 V is 1 - 2 * I R0 / 1 V - 0.2 = 72 % of SoC, of the
    # capacity aged by everything before the last discharge (applied within AGEING_REFRESH).
    before = 1 - expected_loss(K_CYC, 20.0 * (moved - caps[-1]) / 4.0, N0)
    window = (0.9 - 0.1 - 2 * 2.0 * 0.02 / 1.0) * 2.0
    assert caps[0] == pytest.approx(
        window * (1 - expected_loss(K_CYC, 20.0 * first_charge / 4.0, N0)), rel=1e-3)
    assert caps[-1] == pytest.approx(window * before, rel=1e-3)
    assert caps[-1] < 0.96 * caps[0]


def test_resume_continues_the_ageing_state():
    whole = channel(aged_cell(acceleration=20.0, growth=2.0))
    for _ in range(6):
        cycle(whole)
    first = channel(aged_cell(acceleration=20.0, growth=2.0))
    for _ in range(3):
        cycle(first)
    saved = first.get_state()
    assert saved["ageing"]["cycle_efc_eq"] > 0
    resumed = channel(aged_cell(acceleration=20.0, growth=2.0), world=first.world)
    resumed.set_state(saved)
    for _ in range(3):
        cycle(resumed)
    a, b = whole.ageing_summary(), resumed.ageing_summary()
    assert b["cycle_efc_eq"] == pytest.approx(a["cycle_efc_eq"], rel=1e-3)
    assert b["resistance_factor"] == pytest.approx(a["resistance_factor"], rel=1e-4)
    # Without the saved state the new channel would start fresh and age less.
    fresh = channel(aged_cell(acceleration=20.0, growth=2.0))
    for _ in range(3):
        cycle(fresh)
    assert fresh.ageing_summary()["cycle_efc_eq"] < 0.6 * b["cycle_efc_eq"]
    # A state saved before ageing existed keeps the channel's own ageing.
    old = {k: v for k, v in saved.items() if k != "ageing"}
    resumed.set_state(old)
    assert resumed.ageing_summary()["cycle_efc_eq"] == b["cycle_efc_eq"]


@pytest.mark.parametrize("preset", ["lfp-2p2ah", "nmc-1p95ah", "lto-1p8ah"])
def test_presets_age_at_realistic_rates(preset):
    cell = load_cell(preset)
    m = AgeingModel(cell.model.ageing, cell.capacity_ah)
    # 80 % after 1,000-10,000+ full cycles at 25 °C, 1C (seed facts), a few cycles < 0.1 %.
    assert 1000 <= m.cycles_to(0.8) <= 12000
    assert m.capacity_after_cycles(3, 25.0) > 0.999
    assert m.capacity_after_cycles(1000, 45.0) < m.capacity_after_cycles(1000, 25.0)


def test_bad_ageing_section_is_reported_with_its_field(tmp_path):
    src = (load_cell("nmc-1p95ah").source)
    text = open(src, encoding="utf-8").read().replace("cycle_offset_efc: 200",
                                                      "cycle_offset_efc: -5\n    colour: red")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as exc:
        load_cell(bad)
    text = str(exc.value)
    assert "cycle_offset_efc" in text and "must be > 0" in text
    assert "colour" in text and "allowed" in text
