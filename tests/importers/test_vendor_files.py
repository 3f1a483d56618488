"""Imported vendor files against the files' own numbers (read here independently with
pandas / mdbtools / galvani / newarenda, not through labctl's importers)."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pandas as pd
import pytest

from labctl import open_run
from labctl.errors import LabctlError

RES = "20160805_test001_45_cc_01.res"
NDAX = "20260302_IFE_BTS85_2_9_8_1.ndax"


def _throughput(t_s: np.ndarray, i_a: np.ndarray) -> tuple[float, float]:
    """(charge, discharge) Ah: trapezoid integral of the positive / negative current."""
    area = 0.5 * (i_a[1:] + i_a[:-1]) * np.diff(t_s) / 3600.0
    return float(area[area > 0].sum()), float(-area[area < 0].sum())


def _check_common(run, t_s, i_signed, n_rows):
    ts = run.timeseries
    assert len(ts) == n_rows
    assert np.all(np.diff(ts.test_time_s.to_numpy()) >= 0)
    ours = _throughput(ts.test_time_s.to_numpy(), ts.current_a.to_numpy())
    theirs = _throughput(np.asarray(t_s, float), np.asarray(i_signed, float))
    for a, b in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-12)
    assert run.meta["status"] == "imported"
    assert len(run.meta["source"]["sha256"]) == 64
    assert run.meta["source"]["conversions"]


def _per_cycle_close(run, vendor: pd.DataFrame):
    cyc = run.cycles.set_index("cycle_index")
    for c, row in vendor.iterrows():
        assert cyc.loc[c, "charge_capacity_ah"] == pytest.approx(row.charge, rel=1e-3, abs=1e-9)
        assert cyc.loc[c, "discharge_capacity_ah"] == pytest.approx(row.discharge, rel=1e-3,
                                                                    abs=1e-9)


def test_maccor(vendor, imported):
    raw = pd.read_csv(vendor / "maccor_001.txt", sep="\t", skiprows=3, encoding="latin-1",
                      usecols=["Cyc#", "Step", "TestTime", "Amps", "State", "Amp-hr"])
    parts = raw.TestTime.str.extract(r"(\d+)d\s*(\d+):(\d+):([\d.]+)").astype(float)
    t = parts[0] * 86400 + parts[1] * 3600 + parts[2] * 60 + parts[3]
    sign = raw.State.str.strip().map({"C": 1.0, "D": -1.0}).fillna(0.0)
    i = raw.Amps.abs() * sign
    run = open_run(imported("maccor_001.txt"))
    _check_common(run, t, i, len(raw))
    ts = run.timeseries
    # sign: positive on every C record, negative on every D record
    assert np.all(ts.current_a.to_numpy()[(sign > 0) & (raw.Amps.abs() > 0)] > 0)
    assert np.all(ts.current_a.to_numpy()[(sign < 0) & (raw.Amps.abs() > 0)] < 0)
    # per-step capacity: Maccor's Amp-hr at the end of each step (it restarts every step)
    block = (raw.Step != raw.Step.shift()).cumsum()
    last = raw.groupby(block).agg(state=("State", "first"), ah=("Amp-hr", "last"))
    steps = run.steps
    assert len(steps) == len(last)
    for (_, v), (_, s) in zip(last.iterrows(), steps.iterrows(), strict=True):
        moved = s.charge_capacity_ah if v.state.strip() == "C" else s.discharge_capacity_ah
        if v.state.strip() in ("C", "D"):
            assert moved == pytest.approx(v.ah, rel=1e-3, abs=1e-9)
    # one Maccor cycle (Cyc# 0 throughout) -> cycle 1; totals of the C and D steps
    tot_c = last[last.state.str.strip() == "C"].ah.sum()
    tot_d = last[last.state.str.strip() == "D"].ah.sum()
    _per_cycle_close(run, pd.DataFrame({"charge": [tot_c], "discharge": [tot_d]}, index=[1]))


def test_neware_flat_csv(vendor, imported):
    raw = pd.read_csv(vendor / "neware_uio.csv")
    t = pd.to_timedelta(raw["Cumulative Time"]).dt.total_seconds()
    run = open_run(imported("neware_uio.csv"))
    _check_common(run, t, raw["Current(A)"], len(raw))
    # Neware: discharge current negative, as labctl
    assert np.all(run.timeseries.current_a.to_numpy()[raw["Step Type"] == "CC DChg"] < 0)
    per = raw.groupby(["Cycle Index", "Step Index"]).agg(
        charge=("Chg. Cap.(Ah)", "last"), discharge=("DChg. Cap.(Ah)", "last")
    ).groupby(level=0).sum()
    _per_cycle_close(run, per)
    assert list(run.cycles.cycle_index) == list(per.index)


def test_bdf(vendor, imported):
    raw = pd.read_csv(vendor / "batmo_bdf.csv")
    run = open_run(imported("batmo_bdf.csv"))
    # this file writes discharge current positive: labctl's is minus the file's
    _check_common(run, raw["Test Time / h"] * 3600, -raw["Current / A"], len(raw))
    grows = raw["Discharge Capacity / Ah"].diff() > 0
    assert np.all(run.timeseries.current_a.to_numpy()[grows.to_numpy()] < 0)
    per = raw.groupby(["Cycle Count / 1", "Step Index / 1"]).agg(
        charge=("Charge Capacity / Ah", "last"), discharge=("Discharge Capacity / Ah", "last")
    ).groupby(level=0).sum()
    _per_cycle_close(run, per)


def test_arbin_res(vendor, imported):
    out = subprocess.run(["mdb-export", str(vendor / RES), "Channel_Normal_Table"],
                         capture_output=True, check=True).stdout
    raw = pd.read_csv(io.BytesIO(out))
    run = open_run(imported(RES))
    _check_common(run, raw.Test_Time, raw.Current, len(raw))
    assert run.timeseries.test_time_s.iloc[0] == 0.0  # from the first record
    # Arbin's capacity columns restart each cycle: the cycle's value is their last
    per = raw.groupby("Cycle_Index").agg(charge=("Charge_Capacity", "last"),
                                         discharge=("Discharge_Capacity", "last"))
    _per_cycle_close(run, per)
    assert run.meta["source"]["metadata"]["channel"] == 3


def test_biologic_mpr(vendor, imported):
    from galvani import BioLogic

    d = BioLogic.MPRfile(str(vendor / "biol.mpr")).data
    run = open_run(imported("biol.mpr"))
    _check_common(run, d["time/s"], d["I/mA"] / 1000.0, len(d))
    dq = d["dq/mA.h"] / 1000.0
    total_c = run.cycles.charge_capacity_ah.sum()
    assert total_c == pytest.approx(dq[dq > 0].sum(), rel=1e-3)
    assert "spectra" in run.record_tables()


def test_mpr_read_from_views_of_the_bytes_as_from_a_file(vendor):
    # the importer hands galvani views of the bytes it hashed instead of copies
    import io

    from galvani import BioLogic

    from labctl.importers.biologic import _Views

    data = (vendor / "biol.mpr").read_bytes()
    ours, theirs = BioLogic.MPRfile(_Views(data)), BioLogic.MPRfile(io.BytesIO(data))
    assert ours.data.dtype == theirs.data.dtype and len(ours.data) == len(theirs.data) > 0
    assert ours.data.tobytes() == theirs.data.tobytes()
    assert ours.timestamp == theirs.timestamp


def test_neware_ndax(vendor, imported):
    import NewareNDA

    df = NewareNDA.read(str(vendor / NDAX), software_cycle_number=False)
    run = open_run(imported(NDAX))
    ts = run.timeseries
    assert len(ts) == len(df)
    assert np.all(np.diff(ts.test_time_s.to_numpy()) >= 0)
    # throughput over the file's own step time, step by step
    i = df["Current(mA)"].to_numpy(float) / 1000.0
    t = df["Time"].to_numpy(float)
    theirs = [0.0, 0.0]
    for _, g in df.groupby("Step_Index", sort=False):
        c, d_ = _throughput(t[g.index], i[g.index])
        theirs[0] += c
        theirs[1] += d_
    ours = _throughput(ts.test_time_s.to_numpy(), ts.current_a.to_numpy())
    assert ours[0] == pytest.approx(theirs[0], rel=1e-3)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-3, abs=1e-9)
    per = df.groupby(["Cycle", "Step_Index"]).agg(
        charge=("Charge_Capacity(mAh)", "last"), discharge=("Discharge_Capacity(mAh)", "last")
    ).groupby(level=0).sum() / 1000.0
    _per_cycle_close(run, per)


def test_reimport_refused_then_forced(vendor, tmp_path):
    from labctl.importers.api import import_file

    first = import_file(vendor / "neware_uio.csv", tmp_path)
    again = import_file(vendor / "neware_uio.csv", tmp_path)
    assert again.existing and again.path == first.path
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    forced = import_file(vendor / "neware_uio.csv", tmp_path, force=True)
    assert not forced.existing and forced.path != first.path


def test_neware_csv_with_labctl_cycle_numbers(vendor, tmp_path):
    """--cycles labctl: a new cycle where a charging step follows a discharging one, from
    the file's own step types and per-step counters (read here with pandas)."""
    from labctl.importers.api import import_file

    raw = pd.read_csv(vendor / "neware_uio.csv")
    steps = raw.groupby(["Cycle Index", "Step Index"], sort=False).agg(
        kind=("Step Type", "first"), charge=("Chg. Cap.(Ah)", "last"),
        discharge=("DChg. Cap.(Ah)", "last"))
    cycle, seen_discharge, expected = 1, False, []
    for kind in steps["kind"]:
        if "DChg" in kind:
            seen_discharge = True
        elif "Chg" in kind and seen_discharge:
            cycle, seen_discharge = cycle + 1, False
        expected.append(cycle)
    per = steps.assign(cycle=expected).groupby("cycle")[["charge", "discharge"]].sum()
    assert len(per) != raw["Cycle Index"].nunique()  # the file counts otherwise

    run = open_run(import_file(vendor / "neware_uio.csv", tmp_path, cycles="labctl").path)
    _per_cycle_close(run, per)
    assert list(run.cycles.cycle_index) == list(per.index)
    assert any("--cycles labctl" in c for c in run.meta["source"]["conversions"])
    with pytest.raises(LabctlError, match="allowed: file, labctl"):
        import_file(vendor / "neware_uio.csv", tmp_path / "x", cycles="vendor", force=True)
