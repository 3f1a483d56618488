"""Exact bytes the Keithley SMU drivers send and the answers they parse (PyMeasure's
expected_protocol: the test fails on any command not listed, in this order)."""

from __future__ import annotations

import math

import pytest
from pymeasure.instruments.keithley import Keithley2400, Keithley2450
from pymeasure.test import expected_protocol

from labctl.capabilities.cycler import CyclerRanges, EndKind
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, EndCondition, LoggingPolicy, Mode, Quantity
from labctl.clock import VirtualClock
from labctl.drivers.keithley_smu import Keithley2400Link, Keithley2450Link, SmuCyclerChannel
from labctl.errors import InstrumentError

INIT_2400 = [
    (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None),
    (":SENSE:FUNCTION:CONCURRENT 1", None),
    (":SENSE:FUNCTION 'VOLTAGE','CURRENT'", None),
    (":SOURCE:CURRENT:RANGE:AUTO 1", None),
    (":SENSE:VOLTAGE:RANGE:AUTO 1", None),
    (":SENSE:CURRENT:RANGE:AUTO 1", None),
    ("SYST:ERR?", '0,"No error"'),
]
INIT_2450 = [
    (":SOUR:CURR:READ:BACK ON", None),
    (":SOUR:VOLT:READ:BACK ON", None),
    ("SYST:ERR?", '0,"No error;0;0 0"'),
]
RANGES = CyclerRanges(max_current_a=1.05, max_voltage_v=21.0)


NO_LIMITS = SafetyLimits()
LOG_1S = LoggingPolicy(period_s=1.0)


def _run(channel, step, limits=NO_LIMITS, logging=LOG_1S):
    gen = channel.run_step(step, limits, logging)
    batches = []
    try:
        while True:
            batches.append(next(gen))
    except StopIteration as stop:
        return batches, stop.value


def test_2400_init_identify_and_nplc():
    with expected_protocol(Keithley2400, [
        *INIT_2400[:-1],
        (":SENSE:CURRENT:NPLCYCLES 1", None),
        INIT_2400[-1],
        ("*IDN?", "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234567,C30 Mar 17 2006 09:29:29/A02 /K/J"),
    ]) as inst:
        link = Keithley2400Link(inst, nplc=1)
        ident = link.identify()
    assert ident["model"] == "MODEL 2400"
    assert ident["serial"] == "1234567"
    assert ident["firmware"].startswith("C30 Mar 17 2006")


def test_2400_discharge_until_voltage_then_output_off():
    # Three polls: the instrument's TIME element is the time base; the third crosses 3.0 V.
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 3.65", None),
        (":SOURCE:CURRENT -0.5", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (":READ?", "+3.200000E+00,-5.000000E-01,+9.910000E+37,+1.000000E+01,+1.926000E+04"),
        (":READ?", "+3.100000E+00,-5.000000E-01,+9.910000E+37,+1.360000E+02,+1.926000E+04"),
        (":READ?", "+2.990000E+00,-5.000000E-01,+9.910000E+37,+3.700000E+02,+1.926000E+04"),
        ("OUTPUT 0", None),
    ]) as inst:
        clock = VirtualClock()
        channel = SmuCyclerChannel(Keithley2400Link(inst), clock, RANGES, name="smu")
        step = ElectricalStep(Mode.CURRENT, -0.5,
                              until=(EndCondition(Quantity.VOLTAGE, "<=", 3.0, "3.0 V"),))
        batches, end = _run(channel, step, SafetyLimits(max_voltage_v=3.65, min_voltage_v=2.5))
    assert end.kind is EndKind.CONDITION and end.condition_index == 0
    t = [x for b in batches for x in b.step_time_s]
    assert t == [0.0, 126.0, 360.0]  # instrument timestamps minus the first
    assert clock.now() == 360.0  # the station's virtual clock follows the instrument
    # 0.5 A for 360 s = 0.05 Ah out of the cell, none in.
    assert math.isclose(batches[-1].discharge_ah[-1], 0.05, rel_tol=1e-12)
    assert batches[-1].charge_ah[-1] == 0.0


def test_2400_cv_hold_until_current_reads_current_limit_and_safety():
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION VOLT", None),
        (":SENSE:CURRENT:PROTECTION 0.5", None),
        (":SOURCE:VOLTAGE 3.6", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (":READ?", "+3.600000E+00,+4.000000E-01,+9.910000E+37,+0.000000E+00,+1.926000E+04"),
        (":READ?", "+3.600000E+00,+1.000000E-01,+9.910000E+37,+1.000000E+00,+1.926000E+04"),
        ("OUTPUT 0", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        step = ElectricalStep(Mode.VOLTAGE, 3.6, current_limit_a=0.5,
                              until=(EndCondition(Quantity.CURRENT, "<=", 0.11, "C/20"),))
        _, end = _run(channel, step)
    assert end.kind is EndKind.CONDITION


def test_2400_safety_limit_ends_step_on_crossing_sample():
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 3.7", None),
        (":SOURCE:CURRENT 1", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (":READ?", "+3.500000E+00,+1.000000E+00,+9.910000E+37,+0.000000E+00,+1.926000E+04"),
        (":READ?", "+3.710000E+00,+1.000000E+00,+9.910000E+37,+5.000000E-01,+1.926000E+04"),
        ("OUTPUT 0", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        batches, end = _run(channel, ElectricalStep(Mode.CURRENT, 1.0, duration_s=60),
                            SafetyLimits(max_voltage_v=3.7))
    assert end.kind is EndKind.SAFETY and "3.71 V > 3.7 V" in end.reason
    assert batches[-1].voltage_v[-1] == 3.71


def test_2400_instrument_error_is_reported_and_output_goes_off():
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 21", None),
        (":SOURCE:CURRENT 0.5", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '-222,"Parameter data out of range"'),
        ("OUTPUT 0", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        with pytest.raises(InstrumentError, match=r"keithley-2400: instrument error -222: Parameter data"):
            _run(channel, ElectricalStep(Mode.CURRENT, 0.5, duration_s=10))


def test_2400_garbage_reading_is_an_instrument_error():
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 21", None),
        (":SOURCE:CURRENT 0", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (":READ?", "+9.910000E+37,+0.000000E+00,+9.910000E+37,+0.000000E+00,+1.926000E+04"),
        ("OUTPUT 0", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        with pytest.raises(InstrumentError, match="not a number"):
            _run(channel, ElectricalStep(Mode.REST, duration_s=10))


def test_step_beyond_the_instrument_is_refused_before_any_byte():
    with expected_protocol(Keithley2400, INIT_2400) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        with pytest.raises(InstrumentError, match="2 A is beyond the instrument's 1.05 A"):
            _run(channel, ElectricalStep(Mode.CURRENT, 2.0, duration_s=10))


def test_2450_rest_by_time_with_readback_and_clock_time():
    # time_source=clock: polls every poll_period on the station clock; logging every 1 s.
    with expected_protocol(Keithley2450, [
        *INIT_2450,
        (':SENS:FUNC "VOLT"', None),
        (":SOUR:FUNC CURR", None),
        (":SOUR:CURR:VLIM 21", None),
        (":SOUR:CURR:LEV 0", None),
        ("OUTPUT ON", None),
        ("SYST:ERR?", '0,"No error;0;0 0"'),
        *[(':READ? "defbuffer1", READ, SOUR, REL', f"3.30{k},0.0,{k * 0.5}") for k in range(5)],
        ("OUTPUT OFF", None),
    ]) as inst:
        clock = VirtualClock()
        channel = SmuCyclerChannel(Keithley2450Link(inst), clock, RANGES, name="smu",
                                   poll_period_s=0.5, time_source="clock")
        batches, end = _run(channel, ElectricalStep(Mode.REST, duration_s=2.0))
    assert end.kind is EndKind.TIME
    t = [x for b in batches for x in b.step_time_s]
    assert t == [0.0, 1.0, 2.0]
    assert [x for b in batches for x in b.voltage_v] == [3.300, 3.302, 3.304]
    assert clock.now() == 2.0


def test_2450_cv_reads_current_as_the_sensed_element():
    with expected_protocol(Keithley2450, [
        *INIT_2450,
        (':SENS:FUNC "CURR"', None),
        (":SOUR:FUNC VOLT", None),
        (":SOUR:VOLT:ILIM 0.2", None),
        (":SOUR:VOLT:LEV 3.5", None),
        ("OUTPUT ON", None),
        ("SYST:ERR?", '0,"No error;0;0 0"'),
        (':READ? "defbuffer1", READ, SOUR, REL', "1.500000E-01,3.500010E+00,0.000000E+00"),
        ("OUTPUT OFF", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2450Link(inst), VirtualClock(), RANGES, name="smu")
        batches, end = _run(channel, ElectricalStep(
            Mode.VOLTAGE, 3.5, current_limit_a=0.2,
            until=(EndCondition(Quantity.CURRENT, "<=", 0.16, "0.16 A"),)))
    assert end.kind is EndKind.CONDITION
    assert batches[0].voltage_v[0] == 3.50001 and batches[0].current_a[0] == 0.15


def test_2450_current_profile_changes_level_at_profile_times():
    from labctl.capabilities.steps import Profile

    with expected_protocol(Keithley2450, [
        *INIT_2450,
        (':SENS:FUNC "VOLT"', None),
        (":SOUR:FUNC CURR", None),
        (":SOUR:CURR:VLIM 21", None),
        (":SOUR:CURR:LEV -0.1", None),
        ("OUTPUT ON", None),
        ("SYST:ERR?", '0,"No error;0;0 0"'),
        (':READ? "defbuffer1", READ, SOUR, REL', "3.3,-0.1,0.0"),
        (':READ? "defbuffer1", READ, SOUR, REL', "3.3,-0.1,1.0"),
        (":SOUR:CURR:LEV 0.2", None),
        (':READ? "defbuffer1", READ, SOUR, REL', "3.4,0.2,2.0"),
        ("OUTPUT OFF", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2450Link(inst), VirtualClock(), RANGES, name="smu")
        _, end = _run(channel, ElectricalStep(
            Mode.CURRENT_PROFILE, profile=Profile((0.0, 1.0), (-0.1, 0.2)), duration_s=2.0))
    assert end.kind is EndKind.TIME


def test_safe_state_and_close_switch_output_off():
    with expected_protocol(Keithley2450, [*INIT_2450, ("OUTPUT OFF", None)]) as inst:
        channel = SmuCyclerChannel(Keithley2450Link(inst), VirtualClock(), RANGES, name="smu")
        channel.safe_state()


def test_2450_identify_and_nplc():
    with expected_protocol(Keithley2450, [
        *INIT_2450[:2],
        (":SENS:VOLT:NPLC 0.1", None),
        (":SENS:CURR:NPLC 0.1", None),
        INIT_2450[2],
        ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"),
    ]) as inst:
        ident = Keithley2450Link(inst, nplc=0.1).identify()
    assert (ident["model"], ident["serial"], ident["firmware"]) == ("MODEL 2450", "04412345",
                                                                    "1.7.12b")


def test_2400_constant_power_recomputes_current_from_voltage():
    # -1 W: I = P / V at each reading (3.2 V -> -0.3125 A, then 3.125 V -> -0.32 A).
    with expected_protocol(Keithley2400, [
        *INIT_2400,
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 21", None),
        (":SOURCE:CURRENT 0", None),
        ("OUTPUT 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (":READ?", "+3.200000E+00,+0.000000E+00,+9.910000E+37,+0.000000E+00,+0.0E+00"),
        (":SOURCE:CURRENT -0.3125", None),
        (":READ?", "+3.125000E+00,-3.125000E-01,+9.910000E+37,+1.000000E+00,+0.0E+00"),
        (":SOURCE:CURRENT -0.32", None),
        (":READ?", "+3.125000E+00,-3.200000E-01,+9.910000E+37,+2.000000E+00,+0.0E+00"),
        ("OUTPUT 0", None),
    ]) as inst:
        channel = SmuCyclerChannel(Keithley2400Link(inst), VirtualClock(), RANGES, name="smu")
        _, end = _run(channel, ElectricalStep(Mode.POWER, -1.0, duration_s=2.0))
    assert end.kind is EndKind.TIME
