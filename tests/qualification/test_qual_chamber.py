"""Thermal chamber qualification: set-point accuracy and stability at 40 °C."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.labctl_qualification

SETPOINT_C = 40.0
SETTLE_S = 300.0  # after entering ±1 °C, before judging stability
STABLE_FOR_S = 600.0
TIMEOUT_S = 3 * 3600.0
POLL_S = 10.0


def test_setpoint_accuracy_and_stability(chamber, station, measure):
    clock = station.clock
    chamber.set_temperature(SETPOINT_C)
    t0 = clock.now()
    # Wait until within 1 °C, settle, then record STABLE_FOR_S of readings.
    while abs(chamber.temperature_c() - SETPOINT_C) > 1.0:
        if clock.now() - t0 > TIMEOUT_S:
            measure("chamber_time_to_setpoint", clock.now() - t0, high=TIMEOUT_S, unit="s")
        clock.sleep_until(clock.now() + POLL_S)
    reached_s = clock.now() - t0
    clock.sleep_until(clock.now() + SETTLE_S)
    readings = []
    start = clock.now()
    while clock.now() - start < STABLE_FOR_S:
        clock.sleep_until(clock.now() + POLL_S)
        readings.append(chamber.temperature_c())
    temps = np.array(readings)
    try:
        measure("chamber_time_to_setpoint", reached_s / 60, high=60.0, unit="min")
        measure("chamber_setpoint_error", temps.mean() - SETPOINT_C, low=-0.5, high=0.5, unit="°C")
        measure("chamber_stability_pp", temps.max() - temps.min(), high=0.5, unit="°C")
    finally:
        chamber.safe_state()
