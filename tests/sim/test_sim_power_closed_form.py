"""Constant-power steps against the closed form of a linear-OCV, R0-only cell.

With OCV = a + b s and series resistance R0, the current that draws power P solves
(e + I R0) I = P with e = a + b s, so 1/I = (S + e) / (2 P), S = sqrt(e^2 + 4 R0 P),
and ds/dt = I / (3600 Q) integrates in closed form:

    t(e) = 3600 Q / (2 P b) * [ (e S + 4 R0 P ln(e + S)) / 2 + e^2 / 2 ] + const.

The step ends at a terminal voltage V_cut, where I = P / V_cut and e = V_cut - R0 P / V_cut.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import channel, joined, linear_cell, run
from scipy.optimize import brentq

from labctl.capabilities import (
    ElectricalStep,
    EndCondition,
    EndKind,
    LoggingPolicy,
    Mode,
    Profile,
    Quantity,
)

A, B, Q, R0 = 3.0, 1.0, 2.0, 0.05


def _time_of_emf(e: float, power_w: float) -> float:
    """Seconds to bring the EMF to e at constant power (up to a constant)."""
    c = 4.0 * R0 * power_w
    s = math.sqrt(e * e + c)
    return 3600.0 * Q / (2.0 * power_w * B) * ((e * s + c * math.log(e + s)) / 2.0 + e * e / 2.0)


def _emf_at_cut(v_cut: float, power_w: float) -> float:
    return v_cut - R0 * power_w / v_cut


@pytest.mark.parametrize("power_w, s0, v_cut, period_s", [
    (7.0, 0.3, 3.6, 1.0),     # charge until 3.6 V
    (7.0, 0.3, 3.6, 10.0),    # coarse logging: the cut-off must not move
    (-7.0, 0.9, 3.35, 1.0),   # discharge until 3.35 V
])
def test_constant_power_follows_the_closed_form_and_ends_at_its_cut_off(power_w, s0, v_cut,
                                                                        period_s):
    op = ">=" if power_w > 0 else "<="
    step = ElectricalStep(Mode.POWER, power_w, current_limit_a=50.0,
                          until=(EndCondition(Quantity.VOLTAGE, op, v_cut, f"{v_cut} V"),))
    batches, end = run(channel(linear_cell(a=A, b=B, r0=R0, capacity_ah=Q, initial_soc=s0)), step,
                       logging=LoggingPolicy(period_s))
    d = joined(batches)
    t, v, i = d["step_time_s"], d["voltage_v"], d["current_a"]
    e0 = A + B * s0
    t_cut = _time_of_emf(_emf_at_cut(v_cut, power_w), power_w) - _time_of_emf(e0, power_w)
    assert end.kind is EndKind.CONDITION
    assert t[-1] == pytest.approx(t_cut, abs=1e-3)  # cut-off time within 1 ms
    assert v[-1] == pytest.approx(v_cut, abs=1e-6)
    # Every sample draws the power, and sits where the closed form puts it in time.
    np.testing.assert_allclose(v * i, power_w, rtol=1e-9)
    emf = v - i * R0
    t_expected = np.array([_time_of_emf(e, power_w) for e in emf]) - _time_of_emf(e0, power_w)
    np.testing.assert_allclose(t, t_expected, atol=1e-3)
    # The charge moved is the SoC change the closed form gives at the end.
    s_end = (_emf_at_cut(v_cut, power_w) - A) / B
    assert d["charge_ah"][-1] - d["discharge_ah"][-1] == pytest.approx((s_end - s0) * Q, abs=1e-8)


def test_power_profile_jump_then_cut_off():
    """-3 W for 600 s, then -6 W until 3.3 V: the second phase starts from the EMF the first
    phase's closed form reaches at 600 s."""
    s0, v_cut, t1 = 0.6, 3.3, 600.0
    profile = Profile((0.0, t1), (-3.0, -6.0))
    step = ElectricalStep(Mode.POWER_PROFILE, profile=profile, current_limit_a=50.0,
                          duration_s=1e5,
                          until=(EndCondition(Quantity.VOLTAGE, "<=", v_cut, "3.3 V"),))
    batches, end = run(channel(linear_cell(a=A, b=B, r0=R0, capacity_ah=Q, initial_soc=s0)), step,
                       logging=LoggingPolicy(7.0))
    d = joined(batches)
    t, v, i = d["step_time_s"], d["voltage_v"], d["current_a"]
    e0 = A + B * s0
    e1 = brentq(lambda e: _time_of_emf(e, -3.0) - _time_of_emf(e0, -3.0) - t1, e0 - 0.5, e0)
    t_cut = t1 + _time_of_emf(_emf_at_cut(v_cut, -6.0), -6.0) - _time_of_emf(e1, -6.0)
    assert end.kind is EndKind.CONDITION
    assert t[-1] == pytest.approx(t_cut, abs=1e-3)
    # Each sample draws the power in force from its instant on (the jump sample: -6 W).
    want = np.where(t < t1, -3.0, -6.0)
    np.testing.assert_allclose(v * i, want, rtol=1e-9)
