"""Exact bytes of the Keithley 2281S battery-test driver (PyMeasure's expected_protocol: the
test fails on any command not listed, in this order). Command spellings follow the 2281S
reference manual (077114601) where it could be read; `:BATT:TEST:CURR:LIM:SOUR` is the
one unconfirmed command (see labctl/drivers/keithley_2281s.py)."""

from __future__ import annotations

import pytest
from pymeasure.instruments.keithley import Keithley2281S
from pymeasure.test import expected_protocol

from labctl.capabilities.cycler import CyclerRanges, EndKind
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, EndCondition, LoggingPolicy, Mode, Quantity
from labctl.clock import VirtualClock
from labctl.drivers.keithley_2281s import Keithley2281SChannel, Keithley2281SLink
from labctl.errors import InstrumentError, InstrumentTimeout

OPEN = [
    (":SYST:LFR?", "50"),  # PyMeasure's Keithley2281S asks the line frequency when it opens
    (":ENTR:FUNC TEST", None),
    (":BATT:TEST:CURR:END 0", None),
    (":BATT:TEST:CURR:PROT 6.1", None),
    (":BATT:TEST:VOLT:PROT 21", None),
    ("SYST:ERR?", '0,"No error"'),
]
RANGES = CyclerRanges(max_current_a=6.1, max_voltage_v=20.0)
LIMITS = SafetyLimits(max_voltage_v=3.65, min_voltage_v=2.5)
LOG_1S = LoggingPolicy(period_s=1.0)


def _run(channel, step, limits=LIMITS, logging=LOG_1S):
    gen = channel.run_step(step, limits, logging)
    batches = []
    try:
        while True:
            batches.append(next(gen))
    except StopIteration as stop:
        return batches, stop.value


def _channel(inst, clock=None):
    return Keithley2281SChannel(Keithley2281SLink(inst, name="bt"), clock or VirtualClock(),
                                RANGES, name="bt")


def test_open_identify_and_safe_state():
    with expected_protocol(Keithley2281S, [
        *OPEN,
        ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2281S-20-6,4321234,02.04.0605"),
        (":BATT:OUTP 0", None),
    ]) as inst:
        channel = _channel(inst)
        ident = channel.identify()
        channel.safe_state()
    assert ident["model"] == "MODEL 2281S-20-6" and ident["serial"] == "4321234"


def test_cc_charge_sets_vset_at_the_cell_limit_and_ends_on_voltage():
    # Instrument time (REL) is the time base; 3.60 V at t=20 s ends "until 3.6 V".
    with expected_protocol(Keithley2281S, [
        *OPEN,
        (":BATT:TEST:VOLT 3.65", None),  # V-set = the cell's maximum voltage: CC then CV
        (":BATT:TEST:CURR:LIM:SOUR 2", None),
        (":BATT:OUTP 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.40,+2.0,+0.0,+0.00"),
        # Two points arrived since the last query: the newest one is used.
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.45,+2.0,+0.002,+9.0,+3.50,+2.0,+0.0055,+10.0"),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.60,+2.0,+0.011,+20.0"),
        (":BATT:OUTP 0", None),
    ]) as inst:
        channel = _channel(inst)
        step = ElectricalStep(Mode.CURRENT, 2.0,
                              until=(EndCondition(Quantity.VOLTAGE, ">=", 3.6),))
        batches, end = _run(channel, step)
    assert end.kind is EndKind.CONDITION
    assert [float(t) for b in batches for t in b.step_time_s] == [0.0, 10.0, 20.0]
    # 2 A for 20 s by labctl's trapezoids (independent of the instrument's AH element).
    assert abs(batches[-1].charge_ah[-1] - 2.0 * 20 / 3600) < 1e-12
    assert channel.link.last_capacity_ah == 0.011


def test_cv_step_and_discharge_floor():
    with expected_protocol(Keithley2281S, [
        *OPEN,
        (":BATT:TEST:VOLT 3.6", None),
        (":BATT:TEST:CURR:LIM:SOUR 0.5", None),
        (":BATT:OUTP 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.60,+0.10,+0.0,+1.0"),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.60,+0.04,+0.0,+2.0"),
        (":BATT:OUTP 0", None),
        # CC discharge: V-set at the cell's minimum voltage, limit = |I|.
        (":BATT:TEST:VOLT 2.5", None),
        (":BATT:TEST:CURR:LIM:SOUR 0.8", None),
        (":BATT:OUTP 1", None),
        ("SYST:ERR?", '0,"No error"'),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.30,-0.80,+0.0,+5.0"),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.20,-0.80,+0.0,+7.0"),
        (":BATT:OUTP 0", None),
    ]) as inst:
        channel = _channel(inst)
        cv = ElectricalStep(Mode.VOLTAGE, 3.6, current_limit_a=0.5,
                            until=(EndCondition(Quantity.CURRENT, "<=", 0.05),))
        _, end = _run(channel, cv)
        assert end.kind is EndKind.CONDITION
        dis = ElectricalStep(Mode.CURRENT, -0.8, duration_s=2.0)
        batches, end = _run(channel, dis)
    assert end.kind is EndKind.TIME
    assert abs(batches[-1].discharge_ah[-1] - 0.8 * 2 / 3600) < 1e-12


def test_rest_is_output_off_and_still_reads():
    with expected_protocol(Keithley2281S, [
        *OPEN,
        (":BATT:OUTP 0", None),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.30,+0.0,+0.0,+0.0"),
        (':BATT:DATA:DATA? "VOLT,CURR,AH,REL"', "+3.31,+0.0,+0.0,+1.0"),
        (":BATT:OUTP 0", None),
    ]) as inst:
        _, end = _run(_channel(inst), ElectricalStep(Mode.REST, 0.0, duration_s=1.0))
    assert end.kind is EndKind.TIME


def test_discharge_beyond_the_sink_is_refused_before_any_byte():
    with expected_protocol(Keithley2281S, OPEN) as inst:
        channel = _channel(inst)
        with pytest.raises(InstrumentError, match=r"2281S's 1 A sink"):
            _run(channel, ElectricalStep(Mode.CURRENT, -2.0, duration_s=10))
        with pytest.raises(InstrumentError, match=r"beyond the instrument's 6.1 A"):
            _run(channel, ElectricalStep(Mode.CURRENT, 7.0, duration_s=10))


def test_instrument_error_after_configuring_is_an_instrument_error_and_output_off():
    # A firmware that does not know the (unconfirmed) limit command answers -113: the step
    # must fail loudly, not run at some other current.
    with expected_protocol(Keithley2281S, [
        *OPEN,
        (":BATT:TEST:VOLT 3.65", None),
        (":BATT:TEST:CURR:LIM:SOUR 1", None),
        (":BATT:OUTP 1", None),
        ("SYST:ERR?", '-113,"Undefined header"'),
        (":BATT:OUTP 0", None),
    ]) as inst:
        with pytest.raises(InstrumentError, match=r"instrument error -113: Undefined header"):
            _run(_channel(inst), ElectricalStep(Mode.CURRENT, 1.0, duration_s=10))


def test_empty_buffer_waits_for_the_next_point_then_times_out():
    q = ':BATT:DATA:DATA? "VOLT,CURR,AH,REL"'
    with expected_protocol(Keithley2281S, [*OPEN, (q, ""), (q, "+3.30,+0.0,+0.0,+4.0"), (q, "")],
                           ) as inst:
        link = Keithley2281SLink(inst, name="bt", read_wait_s=5.0)
        assert link.read().time_s == 4.0  # the empty answer was polled again
        link.read_wait_s = 0.0
        with pytest.raises(InstrumentTimeout, match="no new reading"):
            link.read()
