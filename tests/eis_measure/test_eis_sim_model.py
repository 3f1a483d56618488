"""The simulated potentiostat against closed-form circuit impedances built from the preset numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.capabilities.potentiostat import EisMode, EisSweep, PotentiostatRanges
from labctl.cells.load import load_cell
from labctl.clock import VirtualClock
from labctl.errors import InstrumentError
from labctl.sim.potentiostat import SimPotentiostat
from labctl.sim.world import SimWorld

K_B = 8.617333262e-5
EPS0 = 8.8541878128e-12
F = np.logspace(5, -1, 31)
RANGES = PotentiostatRanges.from_mapping({"max_frequency_hz": 7e6, "max_current_a": 5.0})


def _arc(w, r, q, a):
    return r / (1 + r * q * (1j * w) ** a)


def _ssb_truth(f, soc_r_int, t_c, p_mpa):
    """ssb-bulk.yaml's numbers at SoC 0.5, by hand: series 0.15, gb arc 0.05 @ 20 kHz a=0.9,
    interface 0.20 @ 10 Hz a=0.8 with contact phi(P) = 0.15 + 0.85 (1 - exp(-P/5)),
    Warburg 0.04, L 5e-8; Arrhenius 0.35 eV from 25 °C on every resistance."""
    w = 2 * np.pi * f
    arr = math.exp(0.35 / K_B * (1 / (t_c + 273.15) - 1 / 298.15))
    phi = 0.15 + 0.85 * (1 - math.exp(-p_mpa / 5.0))
    q1 = (1 / (2 * np.pi * 20000)) ** 0.9 / 0.05
    q2 = (1 / (2 * np.pi * 10)) ** 0.8 / soc_r_int
    return (0.15 * arr + 1j * w * 5e-8 + _arc(w, 0.05 * arr, q1, 0.9)
            + _arc(w, soc_r_int * arr / phi, q2 * phi, 0.8)
            + 0.04 * arr * (1 - 1j) / np.sqrt(w))


def _pstat(cell_name, noise=0.0, seed=0, ambient_c=25.0):
    world = SimWorld(VirtualClock(), ambient_c=ambient_c)
    return SimPotentiostat(world, load_cell(cell_name), RANGES, noise=noise, seed=seed,
                           overhead_s=0.0), world


def test_ssb_spectrum_is_the_closed_form_circuit():
    pstat, _ = _pstat("ssb-bulk")
    sweep = EisSweep(start_frequency_hz=1e5, stop_frequency_hz=0.1, points_per_decade=5)
    res = pstat.measure_spectrum(sweep)
    np.testing.assert_allclose(res.frequency_hz, F[::1][: len(res.frequency_hz)], rtol=1e-12)
    truth = _ssb_truth(res.frequency_hz, 0.20, 25.0, 10.0)  # no rig: the cell's 10 MPa default
    np.testing.assert_allclose(res.z_real_ohm + 1j * res.z_imag_ohm, truth, rtol=1e-9)
    np.testing.assert_allclose(res.phase_deg, np.degrees(np.angle(truth)), atol=1e-7)
    assert (res.dc_voltage_v == pytest.approx(2.50))  # OCV(0.5) of the preset
    assert (res.temperature_c == 25.0).all()


def test_spectrum_follows_temperature_and_pressure_in_the_documented_direction():
    f = np.array([1e4, 1.0, 0.1])
    pstat, world = _pstat("ssb-bulk")
    base = pstat.model.impedance(f, 0.5, 25.0, 10.0)
    cold = pstat.model.impedance(f, 0.5, 0.0, 10.0)
    pressed = pstat.model.impedance(f, 0.5, 25.0, 40.0)
    loose = pstat.model.impedance(f, 0.5, 25.0, 1.0)
    np.testing.assert_allclose(cold, _ssb_truth(f, 0.20, 0.0, 10.0), rtol=1e-9)
    np.testing.assert_allclose(loose, _ssb_truth(f, 0.20, 25.0, 1.0), rtol=1e-9)
    assert (cold.real > base.real).all()  # colder: every resistance higher
    assert loose.real[1] > base.real[1] > pressed.real[1]  # interface shrinks with pressure
    assert loose.real[0] == pytest.approx(base.real[0], rel=0.02)  # HF part barely moves


def test_spectrum_follows_soc_of_the_cycler_cell():
    """At 5 % SoC the preset's interface R is 0.34 (table 0.40 -> 0.28), at 50 % 0.20."""
    pstat, world = _pstat("ssb-bulk")

    class Channel:  # stands in for the sim cycler: only true_state is read
        true_state = type("S", (), {"soc": 0.05, "temperature_c": 25.0})()

    world.cell_channel = Channel()
    res = pstat.measure_spectrum(EisSweep(start_frequency_hz=1e5, stop_frequency_hz=0.1,
                                          points_per_decade=5))
    z = res.z_real_ohm + 1j * res.z_imag_ohm
    # series r0(0.05) = 0.195 (0.22 -> 0.17), Warburg 0.09 (0.12 -> 0.06): recompute by hand
    w = 2 * np.pi * res.frequency_hz
    phi = 0.15 + 0.85 * (1 - math.exp(-2.0))
    q1 = (1 / (2 * np.pi * 20000)) ** 0.9 / 0.05
    q2 = (1 / (2 * np.pi * 10)) ** 0.8 / 0.34
    truth = (0.195 + 1j * w * 5e-8 + _arc(w, 0.05, q1, 0.9) + _arc(w, 0.34 / phi, q2 * phi, 0.8)
             + 0.09 * (1 - 1j) / np.sqrt(w))
    np.testing.assert_allclose(z, truth, rtol=1e-9)


def test_pellet_has_bulk_and_grain_boundary_arcs_and_a_blocking_spike():
    pstat, _ = _pstat("llzo-pellet", ambient_c=-20.0)
    f = np.logspace(np.log10(7e6), 0, 60)
    z = pstat.model.impedance(f, 0.5, -20.0)
    # llzo-pellet.yaml: sigma T Arrhenius, L = 0.1 cm, A = 0.785 cm2
    t, t0 = 253.15, 298.15
    sb = 2.0e-4 * (t0 / t) * math.exp(-0.32 / K_B * (1 / t - 1 / t0))
    sg = 4.0e-4 * (t0 / t) * math.exp(-0.40 / K_B * (1 / t - 1 / t0))
    rb, rg = 0.1 / (sb * 0.785), 0.1 / (sg * 0.785)
    cb = EPS0 * 60 * 0.785e-4 / 1e-3
    w = 2 * np.pi * f
    qg = (rg * 1e-8) ** 0.9 / rg
    truth = (rb / (1 + 1j * w * rb * cb) + _arc(w, rg, qg, 0.9)
             + 1 / (1e-5 * 0.785 / 2 * (1j * w) ** 0.9))
    np.testing.assert_allclose(z, truth, rtol=1e-9)
    # blocking electrodes: at low frequency the phase approaches -90 * alpha_el = -81 degrees
    z_low = pstat.model.impedance(np.array([1e-3]), 0.5, -20.0)
    assert np.degrees(np.angle(z_low[0])) == pytest.approx(-81, abs=1)
    # between the arcs Z' is on the bulk plateau
    k = np.argmin(abs(f - 1e5))
    assert z.real[k] == pytest.approx(rb, rel=0.05)


def test_sweep_takes_virtual_time_and_noise_is_seeded():
    sweep = EisSweep(start_frequency_hz=100.0, stop_frequency_hz=1.0, points_per_decade=1,
                     cycles=2, averages=3, settle_periods=1.0)
    pstat, world = _pstat("ssb-bulk", noise=0.01, seed=7)
    pstat.overhead_s = 0.5
    t0 = world.clock.now()
    res = pstat.measure_spectrum(sweep)
    expected = (1 + 2 * 3) * (1 / 100 + 1 / 10 + 1 / 1) + 3 * 0.5
    assert world.clock.now() - t0 == pytest.approx(expected)
    assert res.elapsed_s[-1] == pytest.approx(expected)
    again = _pstat("ssb-bulk", noise=0.01, seed=7)[0].measure_spectrum(sweep)
    np.testing.assert_array_equal(res.z_real_ohm, again.z_real_ohm)
    other = _pstat("ssb-bulk", noise=0.01, seed=8)[0].measure_spectrum(sweep)
    assert not np.array_equal(res.z_real_ohm, other.z_real_ohm)


def test_noise_has_the_configured_relative_size():
    sweep = EisSweep(start_frequency_hz=1e5, stop_frequency_hz=0.1, points_per_decade=40)
    noisy = _pstat("ssb-bulk", noise=0.005, seed=1)[0].measure_spectrum(sweep)
    clean = _pstat("ssb-bulk")[0].measure_spectrum(sweep)
    rel = np.concatenate([(noisy.z_real_ohm - clean.z_real_ohm) / clean.z_mod_ohm,
                          (noisy.z_imag_ohm - clean.z_imag_ohm) / clean.z_mod_ohm])
    assert np.std(rel) == pytest.approx(0.005, rel=0.15)


def test_out_of_range_sweeps_and_overloads_are_refused():
    pstat, _ = _pstat("ssb-bulk")
    with pytest.raises(InstrumentError, match="max_frequency_hz"):
        pstat.measure_spectrum(EisSweep(start_frequency_hz=1e7))
    # 1 V rms on ~0.15 Ohm needs ~9 A peak; the range is 5 A
    with pytest.raises(InstrumentError, match="overload"):
        pstat.measure_spectrum(EisSweep(amplitude=1.0, stop_frequency_hz=10.0))


def test_geis_dc_current_moves_charge_in_the_cycler_cell():
    from labctl.capabilities.cycler import CyclerRanges
    from labctl.sim.cycler import SimCyclerChannel

    pstat, world = _pstat("ssb-bulk")
    channel = SimCyclerChannel(world, pstat.cell, ranges=CyclerRanges(5.0, 5.0, 0.0))
    world.cell_channel = channel
    soc0 = channel.true_state.soc
    sweep = EisSweep(mode=EisMode.GEIS, start_frequency_hz=1000, stop_frequency_hz=1.0,
                     points_per_decade=2, amplitude=0.01, dc_bias=0.2)
    res = pstat.measure_spectrum(sweep)
    moved = 0.2 * res.elapsed_s[-1] / 3600 / 1.0
    assert channel.true_state.soc == pytest.approx(soc0 + moved, rel=1e-9)
    assert (res.dc_current_a == 0.2).all()
