"""What every simulated channel refuses by itself (sim cycler and sim-pybamm share it)."""

from __future__ import annotations

import pytest

from labctl.capabilities.cycler import CyclerRanges
from labctl.capabilities.steps import ElectricalStep, Mode, Profile
from labctl.errors import InstrumentError
from labctl.sim.channel_checks import current_limit_a, refuse_impossible_step

RANGES = CyclerRanges(max_current_a=5.0, max_voltage_v=4.5, min_voltage_v=2.0, max_power_w=20.0)


@pytest.mark.parametrize(("step", "words"), [
    (ElectricalStep(Mode.CURRENT, -6.0), "6 A is beyond the channel's 5 A"),
    (ElectricalStep(Mode.VOLTAGE, 4.6), "4.6 V is outside the channel's 2..4.5 V"),
    (ElectricalStep(Mode.POWER, 25.0), "25 W is beyond the channel's 20 W"),
    (ElectricalStep(Mode.REST, duration_s=-1.0), "duration must be >= 0 s"),
    (ElectricalStep(Mode.CURRENT_PROFILE, profile=Profile((0.0, 5.0, 5.0), (1.0, 2.0, 1.0))),
     "profile times must increase"),
    (ElectricalStep(Mode.CURRENT_PROFILE, profile=Profile((0.0, 5.0), (1.0, -7.0))),
     "profile current beyond the channel's 5 A"),
])
def test_refused(step, words):
    with pytest.raises(InstrumentError, match=words):
        refuse_impossible_step(step, RANGES, "ch1")


def test_possible_steps_pass_and_current_limit_is_capped():
    refuse_impossible_step(ElectricalStep(Mode.CURRENT, -5.0), RANGES, "ch1")
    refuse_impossible_step(ElectricalStep(Mode.VOLTAGE, 4.2, current_limit_a=9.0), RANGES, "ch1")
    assert current_limit_a(ElectricalStep(Mode.VOLTAGE, 4.2, current_limit_a=9.0), RANGES) == 5.0
    assert current_limit_a(ElectricalStep(Mode.VOLTAGE, 4.2, current_limit_a=-1.5), RANGES) == 1.5
    assert current_limit_a(ElectricalStep(Mode.VOLTAGE, 4.2), RANGES) == 5.0
