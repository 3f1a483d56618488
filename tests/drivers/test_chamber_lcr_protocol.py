"""Exact bytes of the Thermotron 3800 chamber and the E4980A / 4284A LCR-meter drivers."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.instruments.agilent import Agilent4284A, AgilentE4980
from pymeasure.instruments.thermotron import Thermotron3800
from pymeasure.test import expected_protocol

from labctl.capabilities.chamber import ChamberRanges
from labctl.capabilities.potentiostat import EisMode, EisSweep, PotentiostatRanges
from labctl.clock import VirtualClock
from labctl.drivers.lcr import HARDWARE, LcrPotentiostat
from labctl.drivers.thermotron import ThermotronChamber
from labctl.errors import InstrumentError

# PyMeasure's AgilentE4980 warns that it does not know whether the device speaks SCPI.
pytestmark = pytest.mark.filterwarnings("ignore:It is not known whether this device")


@pytest.fixture(autouse=True)
def no_thermotron_wait(monkeypatch):
    # PyMeasure waits 1 s after each Thermotron write (the controller needs it on hardware).
    monkeypatch.setattr("pymeasure.instruments.thermotron.thermotron3800.sleep", lambda s: None)


def test_thermotron_setpoint_read_and_safe_state():
    with expected_protocol(Thermotron3800, [
        ("IDEN?", "3800 CONTROLLER V2.1"),
        ("SETP1,40", None), ("RUNM", None),
        ("PVAR1?", "39.7"),
        ("SETP1,25", None), ("RUNM", None),
    ]) as inst:
        chamber = ThermotronChamber(inst, ChamberRanges(-40.0, 150.0), calibration_due="2027-01-01")
        assert chamber.identify()["idn"] == "3800 CONTROLLER V2.1"
        chamber.set_temperature(40.0)
        assert chamber.temperature_c() == 39.7
        chamber.safe_state()


def test_thermotron_refuses_setpoint_outside_ranges_before_any_byte():
    with expected_protocol(Thermotron3800, []) as inst:
        chamber = ThermotronChamber(inst, ChamberRanges(-40.0, 85.0))
        with pytest.raises(InstrumentError, match=r"100 °C is outside -40..85 °C"):
            chamber.set_temperature(100.0)


def _rc(f):
    """10 Ohm + (100 Ohm || 1 uF): the answers a real meter would give, as |Z| and degrees."""
    z = 10 + 100 / (1 + 1j * 2 * np.pi * f * 1e-4)
    return z, np.abs(z), np.degrees(np.angle(z))


def _e4980_ranges():
    return PotentiostatRanges.from_mapping({**HARDWARE["keysight-e4980a"]})


def test_e4980a_spectrum_point_by_point():
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e5, stop_frequency_hz=1e3,
                     points_per_decade=1, amplitude=0.1)
    freqs = sweep.frequencies_hz()
    z, mag, deg = _rc(freqs)
    pairs = [("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
             (":VOLT:LEV 0.1", None), (":APER MED,1", None)]
    for f, m, d in zip(freqs, mag, deg, strict=True):
        pairs += [(f":FREQ:CW {f:g}", None), ("*TRG", f"{m:+.6E},{d:+.6E},+0")]
    pairs += [(":BIAS:STAT OFF", None), ("TRIG:SOUR HOLD", None), (":VOLT:LEV 0", None)]
    with expected_protocol(AgilentE4980, pairs) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), VirtualClock(), name="lcr")
        result = lcr.measure_spectrum(sweep)
        lcr.safe_state()
    assert np.allclose(result.frequency_hz, [1e5, 1e4, 1e3])
    assert np.allclose(result.z, z, rtol=1e-6)
    assert np.all(result.z_imag_ohm < 0)  # capacitive


def test_e4980a_overload_status_is_an_instrument_error():
    sweep = EisSweep(EisMode.GEIS, start_frequency_hz=1e3, stop_frequency_hz=1e3, amplitude=0.01)
    with expected_protocol(AgilentE4980, [
        ("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
        (":CURR:LEV 0.01", None), (":APER MED,1", None),
        (":FREQ:CW 1000", None), ("*TRG", "+9.9E+37,+9.9E+37,+1"),
    ]) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), VirtualClock(), name="lcr")
        with pytest.raises(InstrumentError, match=r"at 1000 Hz: status 1 \(analog bridge"):
            lcr.measure_spectrum(sweep)


def test_sweep_outside_the_meter_is_refused_before_any_byte():
    with expected_protocol(AgilentE4980, [
        ("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
    ]) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), VirtualClock(), name="lcr")
        with pytest.raises(InstrumentError, match="below the potentiostat's min_frequency_hz"):
            lcr.measure_spectrum(EisSweep(start_frequency_hz=1e5, stop_frequency_hz=1.0))
        with pytest.raises(InstrumentError, match=r"DC bias 2.5 V is beyond the keysight-e4980a's"):
            lcr.measure_spectrum(EisSweep(start_frequency_hz=1e5, stop_frequency_hz=1e3,
                                          amplitude=0.01, dc_bias=2.5))
        with pytest.raises(InstrumentError, match="DC bias current needs the meter's option 001"):
            lcr.measure_spectrum(EisSweep(EisMode.GEIS, start_frequency_hz=1e5,
                                          stop_frequency_hz=1e3, amplitude=0.001,
                                          dc_bias=0.001))


def test_4284a_uses_its_own_commands():
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e4, stop_frequency_hz=1e4, amplitude=0.05)
    _, mag, deg = _rc(np.array([1e4]))
    with expected_protocol(Agilent4284A, [
        ("FUNC:IMP ZTD", None), ("TRIG:SOUR BUS", None),
        ("*IDN?", "HEWLETT-PACKARD,4284A,2940J01234,REV01.20"),
        ("VOLT:LEV 0.05", None), (":APER MED,1", None),
        ("FREQ 10000", None), ("*TRG", f"{mag[0]:+.6E},{deg[0]:+.6E},+0"),
        ("BIAS:STAT 0", None), ("TRIG:SOUR HOLD", None), ("VOLT:LEV 0.005", None),
    ]) as inst:
        ranges = PotentiostatRanges.from_mapping(HARDWARE["agilent-4284a"])
        lcr = LcrPotentiostat(inst, "agilent-4284a", ranges, VirtualClock(), name="lcr")
        assert lcr.identify()["serial"] == "2940J01234"
        result = lcr.measure_spectrum(sweep)
        lcr.safe_state()
    assert np.isclose(abs(result.z[0]), mag[0], rtol=1e-6)


def test_e4980a_dc_bias_on_for_the_sweep_then_off():
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e4, stop_frequency_hz=1e3,
                     points_per_decade=1, amplitude=0.05, dc_bias=-1.2)
    _, mag, deg = _rc(sweep.frequencies_hz())
    with expected_protocol(AgilentE4980, [
        ("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
        (":VOLT:LEV 0.05", None), (":APER MED,1", None),
        (":BIAS:VOLT -1.2", None), (":BIAS:STAT ON", None),
        (":FREQ:CW 10000", None), ("*TRG", f"{mag[0]:+.6E},{deg[0]:+.6E},+0"),
        (":FREQ:CW 1000", None), ("*TRG", f"{mag[1]:+.6E},{deg[1]:+.6E},+0"),
        (":BIAS:STAT OFF", None),
    ]) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), VirtualClock(), name="lcr")
        lcr.measure_spectrum(sweep)


def test_bias_is_switched_off_when_a_point_fails():
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e3, stop_frequency_hz=1e3, amplitude=0.05,
                     dc_bias=1.0)
    with expected_protocol(AgilentE4980, [
        ("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
        (":VOLT:LEV 0.05", None), (":APER MED,1", None),
        (":BIAS:VOLT 1", None), (":BIAS:STAT ON", None),
        (":FREQ:CW 1000", None), ("*TRG", "+9.9E+37,+9.9E+37,+3"),
        (":BIAS:STAT OFF", None),
    ]) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), VirtualClock(), name="lcr")
        with pytest.raises(InstrumentError, match="signal source overloaded"):
            lcr.measure_spectrum(sweep)


def test_4284a_dc_bias_uses_pymeasure_and_only_its_standard_levels():
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e3, stop_frequency_hz=1e3, amplitude=0.05,
                     dc_bias=1.5)
    _, mag, deg = _rc(np.array([1e3]))
    with expected_protocol(Agilent4284A, [
        ("FUNC:IMP ZTD", None), ("TRIG:SOUR BUS", None),
        ("VOLT:LEV 0.05", None), (":APER MED,1", None),
        ("BIAS:VOLT 1.5", None), ("BIAS:STAT 1", None),
        ("FREQ 1000", None), ("*TRG", f"{mag[0]:+.6E},{deg[0]:+.6E},+0"),
        ("BIAS:STAT 0", None),
    ]) as inst:
        ranges = PotentiostatRanges.from_mapping(HARDWARE["agilent-4284a"])
        lcr = LcrPotentiostat(inst, "agilent-4284a", ranges, VirtualClock(), name="lcr")
        lcr.measure_spectrum(sweep)
        with pytest.raises(InstrumentError, match=r"standard DC bias is 0, 1.5, 2 V only, not 1 V"):
            lcr.measure_spectrum(EisSweep(start_frequency_hz=1e3, stop_frequency_hz=1e3,
                                          amplitude=0.05, dc_bias=1.0))


def test_sweep_advances_the_virtual_clock_by_the_measurement_time():
    # 1 kHz down to 20 Hz (3 points), 2 averages, point_time 0.1 s: each point takes
    # max((settle 1 + cycles 1 x 2 averages) periods, 2 averages x 0.1 s).
    sweep = EisSweep(EisMode.PEIS, start_frequency_hz=1e3, stop_frequency_hz=20.0,
                     points_per_decade=1, amplitude=0.05, averages=2)
    freqs = sweep.frequencies_hz()
    _, mag, deg = _rc(freqs)
    pairs = [("FORM ASC", None), ("FUNCtion:IMPedance:TYPE ZTD", None), ("TRIG:SOUR BUS", None),
             (":VOLT:LEV 0.05", None), (":APER MED,2", None)]
    for f, m, d in zip(freqs, mag, deg, strict=True):
        pairs += [(f":FREQ:CW {f:g}", None), ("*TRG", f"{m:+.6E},{d:+.6E},+0")]
    clock = VirtualClock(start=100.0)
    with expected_protocol(AgilentE4980, pairs) as inst:
        lcr = LcrPotentiostat(inst, "keysight-e4980a", _e4980_ranges(), clock, name="lcr",
                              point_time_s=0.1)
        result = lcr.measure_spectrum(sweep)
    per_point = [max(3.0 / f, 0.2) for f in freqs]  # independent of the driver's arithmetic
    assert np.allclose(result.elapsed_s, np.cumsum(per_point))
    assert np.isclose(clock.now(), 100.0 + sum(per_point))
