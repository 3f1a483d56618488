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
    _same_as_newarenda(ours, df)


def _same_as_newarenda(ours, df):
    assert len(ours["Index"]) == len(df)
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


def _record_offset(i: int) -> int:
    """Byte offset of record i (0-based) in data.ndc: 4 KiB pages after a header page,
    8-byte records in bytes 132..4092 of each."""
    page, j = divmod(i, (4096 - 136) // 8)
    return 4096 * (1 + page) + 132 + 8 * j


def _run_info_offset(i: int) -> int:
    page, j = divmod(i, (4096 - 196) // 100)
    return 4096 * (1 + page) + 132 + 100 * j


def test_padding_inside_the_records_and_odd_run_info_rows(vendor, tmp_path):
    """Padding (voltage 0) between records, not only after the last one, a runInfo row
    pointing past the records and a duplicated one: the reader's general path, still
    record for record what newarenda reads."""
    import struct
    import zipfile

    import NewareNDA

    with zipfile.ZipFile(vendor / NDAX) as z:
        members = {n: z.read(n) for n in z.namelist()}
    data = bytearray(members["data.ndc"])
    for i in [5, *range(1000, 1060), 77777, 123456]:
        data[_record_offset(i):_record_offset(i) + 4] = bytes(4)
    members["data.ndc"] = bytes(data)
    run = bytearray(members["data_runInfo.ndc"])
    struct.pack_into("<i", run, _run_info_offset(10) + 41, 999_999)
    struct.pack_into("<i", run, _run_info_offset(20) + 41,
                     struct.unpack_from("<i", run, _run_info_offset(19) + 41)[0])
    members["data_runInfo.ndc"] = bytes(run)
    odd = tmp_path / "odd.ndax"
    with zipfile.ZipFile(odd, "w", zipfile.ZIP_DEFLATED) as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    ours = read_ndax(odd.read_bytes())
    df = NewareNDA.read(str(odd), software_cycle_number=False, log_level="ERROR")
    assert ours is not None and len(df) == 252951 - 63
    _same_as_newarenda(ours, df)


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
