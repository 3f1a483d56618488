"""A slow (diffusion) RC pair next to the fast one: `hppc(slow_slope=True)` keeps R1 and tau1 true.

Closed-form synthetic data (tests/analysis/characterization/synth.py): the preset-like
cell of R1 = 8 mOhm, tau1 = 30 s plus R2 = 12 mOhm, tau2 = 1200 s. Within a 10 s
pulse the slow pair adds R2 I t / tau2, a ramp in the charge moved.
"""

from __future__ import annotations

import numpy as np

from labctl.analysis.ecm import hppc
from labctl.cells.spec import Table
from tests.analysis.characterization.synth import Truth, simulate

CAP = 2.2
OCV = Table(np.array([0.0, 0.1, 0.5, 0.9, 1.0]), np.array([3.0, 3.2, 3.3, 3.4, 3.6]))


def _run():
    sched = [(3600.0, 0.0)]
    for _ in range(2):
        sched += [(720.0, -CAP), (3600.0, 0.0), (10.0, -CAP), (40.0, 0.0), (10.0, 0.75 * CAP),
                  (600.0, 0.0)]
    dts = [0.1 if d <= 40 else 1.0 for d, _ in sched]
    truth = Truth(CAP, lambda s: OCV(s), lambda s: np.full_like(s, 0.02),
                  [(0.008, 30.0), (0.012, 1200.0)], initial_soc=1.0)
    return simulate(truth, sched, dts)[0]


def test_slow_pair_biases_a_one_pair_fit_unless_taken_up():
    df = _run()
    plain = hppc(df, capacity_ah=CAP, initial_soc=1.0, ocv=OCV, relax_s=40.0).pulses
    slow = hppc(df, capacity_ah=CAP, initial_soc=1.0, ocv=OCV, relax_s=40.0,
                slow_slope=True).pulses
    # Without the slope term the slow pair leaks into R1 (about +10 %) ...
    assert np.all(plain.r1_ohm > 0.008 * 1.05)
    # ... with it, R1 and tau1 are back within 2 % and 3 % at every pulse (no noise).
    np.testing.assert_allclose(slow.r1_ohm, 0.008, rtol=0.02)
    np.testing.assert_allclose(slow.tau1_s, 30.0, rtol=0.03)
    # The slope taken up is about the slow pair's ramp, 3600 R2 / tau2 V/Ah (a little less:
    # the pair also decays, and part of the ramp after the pulse looks like its tail).
    k = 3600 * 0.012 / 1200.0
    assert np.all((slow.ocv_slope_v_per_ah > 0.6 * k) & (slow.ocv_slope_v_per_ah < 1.0 * k))
