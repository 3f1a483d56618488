"""The numpy .ndax reader against newarenda (PyPI), record for record, on the sample file."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.importers.ndax_fast import read_ndax

NDAX = "20260302_IFE_BTS85_2_9_8_1.ndax"


@pytest.fixture(scope="module")
def both(vendor):
    import NewareNDA

    path = vendor / NDAX
    return read_ndax(path.read_bytes()), NewareNDA.read(str(path), software_cycle_number=False,
                                                       log_level="ERROR")


def test_every_record_and_column_as_newarenda_reads_it(both):
    ours, df = both
    assert ours is not None and len(ours["Index"]) == len(df) == 252951
    for name in ("Index", "Cycle", "Step", "Step_Index"):
        assert np.array_equal(ours[name], df[name].to_numpy(np.int64)), name
    # newarenda hands out float32: equal to its precision (ours stay float64)
    for name in ("Time", "Voltage", "Current(mA)", "Charge_Capacity(mAh)",
                 "Discharge_Capacity(mAh)", "Charge_Energy(mWh)", "Discharge_Energy(mWh)"):
        theirs = df[name].to_numpy(np.float64)
        assert np.allclose(ours[name], theirs, rtol=2e-7, atol=1e-6), name
    assert ours["Status"].to_pylist() == df["Status"].astype(str).tolist()
    stamps = df["Timestamp"].map(lambda x: x.timestamp()).to_numpy()
    assert ours["start"][0] == pytest.approx(stamps[0], abs=1e-6)
    assert np.array_equal(ours["T1"], df["T1"].to_numpy(np.float64))


def test_records_between_run_info_rows_are_interpolated(both):
    # most records have no runInfo row: their time is the last one's plus the intervals
    ours, df = both
    t = ours["Time"]
    steps = ours["Step"]
    same = steps[1:] == steps[:-1]
    assert np.all(np.diff(t)[same] >= 0)
    assert np.unique(np.round(np.diff(t)[same], 6)).tolist() == [1.0]  # 1 s records


def test_layouts_it_does_not_know_go_to_newarenda():
    assert read_ndax(b"PK\x03\x04 not really a zip") is None
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("data.ndc", "data_runInfo.ndc", "data_step.ndc"):
            z.writestr(name, bytes([1, 0, 99]) + bytes(8189))  # ndc version 99
    assert read_ndax(buf.getvalue()) is None
