"""Outliers of the fleet table: more than 3 scaled MADs from the lot's median (hand-computed)."""

from __future__ import annotations

import math

import pandas as pd

from labctl.fleet.fleet_table import outlier_mask, per_item_table, run_table


def test_three_scaled_mads_by_hand():
    # median 1.025; |deviations| 0.025 0.075 0.125 0.025 0.075 3.975 -> MAD 0.075,
    # scaled 0.075 * 1.4826 = 0.1112, threshold 0.3336: only 5.0 is beyond it.
    x = pd.Series([1.0, 1.1, 0.9, 1.05, 0.95, 5.0])
    assert outlier_mask(x).tolist() == [False] * 5 + [True]
    # Same median and MAD; 1.35 lies 0.325 from the median, inside 0.3336: not flagged.
    y = pd.Series([1.0, 1.1, 0.9, 1.05, 0.95, 1.35, math.nan])
    assert not outlier_mask(y).any()


def test_zero_mad_and_small_lots():
    assert outlier_mask(pd.Series([2.0, 2.0, 2.0, 2.0, 2.5])).tolist() == [False] * 4 + [True]
    assert not outlier_mask(pd.Series([1.0, 9.0])).any()  # no lot to compare with


def test_per_setpoint_table_matches_set_points_and_flags_the_odd_cell():
    runs, results = [], []
    r0 = {"a": 0.0100, "b": 0.0101, "c": 0.0099, "d": 0.0100, "e": 0.0200}
    for k, (run, r) in enumerate(r0.items()):
        path = f"/store/{run}"
        runs.append({"run_id": run, "cell": "NMC", "run_path": path})
        soc_jitter = 0.002 * (k - 2)  # set-points are means: never exactly equal
        results.append({"run_path": path, "ok": True, "summary": {"r0": r},
                        "items": {"temperature_c": [25.1, 24.9], "soc": [0.5 + soc_jitter, 0.9],
                                  "r0_ohm": [r, 0.010], "r1_ohm": [0.005, 0.005],
                                  "tau1_s": [10.0, 10.0]}})
    table = run_table(results, pd.DataFrame(runs).rename(columns={"run_path": "path"}))
    assert table.loc[table["outlier"], "run_id"].tolist() == ["e"]
    long = per_item_table("hppc", table, results)
    flagged = long[long["outlier"]]
    assert flagged[["run_id", "soc"]].values.tolist() == [["e", 0.5 + 0.002 * 2]]
    assert len(long) == 10


def test_lots_compare_each_run_with_its_own_kind_only():
    """--lot cell: an NMC run is not an outlier for being unlike the LFP runs; within the
    LFP lot the odd run is (by hand: LFP median 2.195, MAD 0.01, threshold 3 x 0.0148)."""
    import pytest

    from labctl.errors import LabctlError
    from labctl.fleet.fleet_table import parse_lot

    capacity = {"l1": 2.20, "l2": 2.21, "l3": 2.19, "l4": 2.05, "n1": 1.95, "n2": 1.96,
                "n3": 1.94}
    runs = [{"run_id": r, "cell": "lfp" if r[0] == "l" else "nmc", "path": f"/s/{r}"}
            for r in capacity]
    results = [{"run_path": f"/s/{r}", "ok": True, "summary": {"capacity_ah": c}}
               for r, c in capacity.items()]
    one_lot = run_table(results, pd.DataFrame(runs))
    assert set(one_lot.loc[one_lot["outlier"], "run_id"]) == set()  # bimodal: MAD is wide
    by_cell = run_table(results, pd.DataFrame(runs), parse_lot("cell"))
    assert by_cell.loc[by_cell["outlier"], "run_id"].tolist() == ["l4"]
    assert dict(zip(by_cell["run_id"], by_cell["lot"], strict=True))["n2"] == "nmc"
    with pytest.raises(LabctlError, match="allowed: cell"):
        parse_lot("cell,colour")
