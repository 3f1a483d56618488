"""Exports: BDF names and converted values, labctl CSV, the Parquet folder, bad requests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.export import export_run
from labctl.store.run import open_run
from labctl.store.tables import finalize
from tests.store.store_synth import write_run

# Battery Data Format, ontology 1.3.0 (github.com/battery-data-alliance/battery-data-format,
# README "Required / Recommended / Optional quantities"), written out here by hand.
BDF_AS_IS = {
    "Test Time / s": "test_time_s",
    "Voltage / V": "voltage_v",
    "Current / A": "current_a",
    "Unix Time / s": "unix_time_s",
    "Cycle Count / 1": "cycle_index",
    "Step Count / 1": "step_index",
    "Surface Temperature / degC": "temperature_c",
    # "... of the current cycle ... resets to zero when cycle_count increments": ours.
    "Cycle Charging Capacity / Ah": "charge_capacity_ah",
    "Cycle Discharging Capacity / Ah": "discharge_capacity_ah",
    "Cycle Charging Energy / Wh": "charge_energy_wh",
    "Cycle Discharging Energy / Wh": "discharge_energy_wh",
}
# "... since test start ... Never resets between steps or cycles": running totals.
BDF_TOTALS = {
    "Charging Capacity / Ah": "charge_capacity_ah",
    "Discharging Capacity / Ah": "discharge_capacity_ah",
    "Charging Energy / Wh": "charge_energy_wh",
    "Discharging Energy / Wh": "discharge_energy_wh",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    synth = write_run(tmp_path_factory.mktemp("results"), "exp", np.random.default_rng(31))
    finalize(synth.path)
    return open_run(synth.path)


def test_bdf_has_the_spec_names_and_converted_values(run, tmp_path):
    out = export_run(run, "bdf", tmp_path / "deep" / "cell-a.bdf.csv")
    assert out.read_text().splitlines()[0].split(",")[:3] == \
        ["Test Time / s", "Voltage / V", "Current / A"]  # required first, header unquoted
    df = pd.read_csv(out)
    assert set(df.columns) == set(BDF_AS_IS) | set(BDF_TOTALS)
    ts = run.timeseries
    for label, ours in BDF_AS_IS.items():
        np.testing.assert_array_equal(df[label].to_numpy(float), ts[ours].to_numpy(float),
                                      err_msg=label)  # exact, NaN where a reading is missing
    # Running totals since the test started, computed here cycle by cycle.
    for label, ours in BDF_TOTALS.items():
        expected, carried, previous = [], 0.0, None
        for cyc, value in zip(ts.cycle_index, ts[ours], strict=True):
            if previous is not None and cyc != previous[0]:
                carried += previous[1]
            expected.append(carried + value)
            previous = (cyc, value)
        np.testing.assert_allclose(df[label], expected, rtol=1e-14, err_msg=label)
        assert np.all(np.diff(df[label]) >= 0)  # never resets
    # The whole test's throughput equals the sum over cycles of each cycle's total.
    per_cycle = ts.groupby("cycle_index").charge_capacity_ah.last().sum()
    assert df["Charging Capacity / Ah"].iloc[-1] == pytest.approx(per_cycle, rel=1e-14)
    side = json.loads((tmp_path / "deep" / "cell-a.bdf.csv.json").read_text())
    assert side["current_sign"].startswith("positive current = charge")
    assert side["run_id"] == "exp" and side["bdf_ontology_version"] == "1.3.0"
    assert side["columns"]["Charging Capacity / Ah"]["from"] == "charge_capacity_ah"


def test_csv_has_our_names_and_exact_values(run, tmp_path):
    out = export_run(run, "csv", tmp_path / "run.csv")
    df = pd.read_csv(out)
    assert list(df.columns) == list(SAMPLE_COLUMNS)
    for name in SAMPLE_COLUMNS:
        np.testing.assert_array_equal(df[name].to_numpy(float), run.timeseries[name].to_numpy(float))
    side = json.loads((tmp_path / "run.csv.json").read_text())
    assert side["columns"]["current_a"]["unit"] == "A" and "charge" in side["current_sign"]


def test_parquet_export_is_a_folder_of_the_three_tables(run, tmp_path):
    out = export_run(run, "parquet", tmp_path / "pq")
    assert sorted(p.name for p in out.iterdir()) == [
        "cycles.parquet", "export.json", "run.json", "steps.parquet", "timeseries.parquet"]
    for name in ("timeseries", "steps", "cycles"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"),
                                      getattr(run, name))
    assert json.loads((out / "run.json").read_text())["run_id"] == "exp"


def test_bad_requests_are_clear_errors(run, tmp_path):
    with pytest.raises(LabctlError, match="unknown export format 'hdf'; allowed: csv, parquet, "
                                          "bdf"):
        export_run(run, "hdf", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(LabctlError, match="is a folder"):
        export_run(run, "csv", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(LabctlError, match="not a folder"):
        export_run(run, "parquet", tmp_path / "file")
