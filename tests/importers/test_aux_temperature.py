"""Auxiliary temperatures -> temperature_c: Arbin's Auxiliary_Table and Maccor's Aux #N
columns, checked against the numbers written in the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl import open_run
from labctl.importers.api import import_file
from tests.importers import synth

RES = "20160805_test001_45_cc_01.res"


def test_maccor_sample_aux_channels_hold_no_sensor(vendor, tmp_path):
    # the sample logs 16 thermocouple inputs in C, all near -2500 C (nothing connected):
    # no temperature can come from them
    raw = pd.read_csv(vendor / "maccor_001.txt", sep="\t", skiprows=3, encoding="latin-1")
    aux = [c for c in raw.columns if c.startswith("Aux #")]
    assert len(aux) == 16 and (raw[aux].to_numpy() < -273.15).all()
    run = open_run(import_file(vendor / "maccor_001.txt", tmp_path).path)
    assert run.timeseries.temperature_c.isna().all()
    note = [c for c in run.meta["source"]["conversions"] if "absolute zero" in c]
    assert note and all(name in note[0] for name in aux)


def _maccor_with_aux() -> tuple[str, np.ndarray]:
    """The synthetic Maccor file plus Aux #1 in V and Aux #2 in F (one reading of an
    open thermocouple); returns the text and the expected degC."""
    rows = synth.profile()
    temps_f = 68.0 + 0.01 * np.arange(len(rows))
    temps_f[5] = -4500.0  # below absolute zero: no reading
    lines = ["Today's Date,12/01/2022",
             "Rec,Cycle P,Cycle C,Step,Test (Min),Step (Min),Amp-hr,Watt-hr,Amps,Volts,ES,"
             "DPt Time,Aux #1,Units,Aux #2,Units"]
    for k, r in enumerate(rows, 1):
        lines.append(f"{k},{r.cycle - 1},{r.cycle - 1},{r.step},{r.t / 60:.6f},"
                     f"{r.step_t / 60:.6f},{r.q_step:.6f},{r.e_step:.6f},{r.current:.5f},"
                     f"{r.voltage:.5f},0,11/30/2022 09:00:00,1.25000,V,{temps_f[k - 1]:.4f},F")
    expected = (temps_f - 32.0) * 5.0 / 9.0
    expected[5] = np.nan
    return "\n".join(lines) + "\n", expected


def test_maccor_aux_temperature_in_fahrenheit(tmp_path):
    text, expected = _maccor_with_aux()
    f = tmp_path / "maccor_aux.csv"
    f.write_text(text)
    run = open_run(import_file(f, tmp_path / "r").path)
    got = run.timeseries.temperature_c.to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6, equal_nan=True)
    assert any("'Aux #2'" in c for c in run.meta["source"]["conversions"])
    assert run.steps.max_temperature_c.max() == pytest.approx(np.nanmax(expected))


def test_arbin_auxiliary_table_temperature(vendor, tmp_path, monkeypatch):
    # the sample's Auxiliary_Table is empty: give the real data table an Auxiliary_Table
    # in Arbin's layout (Data_Type 0 voltage, 1 temperature) with known readings
    from labctl.importers import arbin

    real = arbin._export_tables

    def with_aux(path, tables):
        out = real(path, tables)
        assert len(out[arbin.AUX_TABLE]["X"]) == 0  # as shipped: no auxiliary readings
        points = np.asarray(out[arbin.DATA_TABLE]["Data_Point"], dtype=np.int64)
        have = points[points != points[7]]  # one record without a reading
        temps = 25.0 + 0.001 * have
        out[arbin.AUX_TABLE] = {
            "Test_ID": np.ones(3 * len(have)),
            "Data_Point": np.r_[have, have, have],
            "Auxiliary_Index": np.r_[np.full(len(have), 1), np.full(len(have), 1),
                                     np.full(len(have), 2)],
            "Data_Type": np.r_[np.zeros(len(have)), np.ones(len(have)), np.ones(len(have))],
            "X": np.r_[np.full(len(have), 3.3), temps, temps + 100.0],
        }
        return out

    monkeypatch.setattr(arbin, "_export_tables", with_aux)
    run = open_run(import_file(vendor / RES, tmp_path).path)
    ts = run.timeseries
    points = real(vendor / RES, [arbin.DATA_TABLE])[arbin.DATA_TABLE]["Data_Point"]
    expected = 25.0 + 0.001 * np.asarray(points, dtype=float)
    expected[7] = np.nan
    np.testing.assert_allclose(ts.temperature_c.to_numpy(), expected, equal_nan=True)
    assert any("channel 1" in c and "[2]" in c for c in run.meta["source"]["conversions"])
