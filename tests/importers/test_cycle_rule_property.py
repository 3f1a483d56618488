"""`--cycles labctl` on any step sequence (hypothesis): cycles are renumbered by the rule
alone (a new cycle where a charging step starts after a discharge), steps and throughput
are the file's whatever the rule. The expected numbers are computed here from the
generated steps, not by labctl."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import open_run
from labctl.importers.api import import_file

STEP = st.tuples(st.sampled_from([1.0, 0.0, -1.0]), st.integers(min_value=2, max_value=6))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12),
       vendor_cycle_every=st.integers(min_value=1, max_value=5))
def test_labctl_cycle_rule_on_any_step_sequence(tmp_path_factory, steps, vendor_cycle_every):
    rows, t = [], 0.0
    for k, (current, n) in enumerate(steps):
        vendor_cycle = 1 + k // vendor_cycle_every
        for _ in range(n):
            rows.append(f"{t:g},{current:g},{3.5 + 0.1 * current:g},{vendor_cycle},{k + 1}")
            t += 10.0
    tmp = tmp_path_factory.mktemp("rule")
    f = tmp / "steps.csv"
    f.write_text("Test Time / s,Current / A,Voltage / V,Cycle Count / 1,Step Index / 1\n"
                 + "\n".join(rows) + "\n")
    cycle, seen_discharge, expected = 1, False, []
    for current, _n in steps:
        if current < 0:
            seen_discharge = True
        elif current > 0 and seen_discharge:
            cycle, seen_discharge = cycle + 1, False
        expected.append(cycle)

    by_file = open_run(import_file(f, tmp / "a").path)
    by_rule = open_run(import_file(f, tmp / "b", cycles="labctl").path)
    ts = by_rule.timeseries
    first_rows = ts.groupby("step_index", sort=True).head(1)
    assert first_rows["cycle_index"].tolist() == expected
    assert len(by_rule.steps) == len(steps) == len(by_file.steps)
    for column in ("charge_capacity_ah", "discharge_capacity_ah"):
        assert by_rule.cycles[column].sum() == pytest.approx(by_file.cycles[column].sum(),
                                                             abs=1e-12)
    assert np.array_equal(ts["current_a"].to_numpy(), by_file.timeseries["current_a"].to_numpy())
