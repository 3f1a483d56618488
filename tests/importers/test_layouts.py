"""Layouts not covered by the vendor samples, from small files written here with a known
profile (tests/importers/synth.py): per-cycle capacities, row counts, sign and units."""

from __future__ import annotations

import numpy as np
import pytest

from labctl import open_run
from labctl.importers.api import import_file
from tests.importers import synth


def _check(path, fmt, tmp_path):
    r = import_file(path, tmp_path / "results")
    assert r.format == fmt
    run = open_run(r.path)
    assert len(run.timeseries) == synth.records_n() == r.rows
    np.testing.assert_allclose(run.timeseries.current_a, synth.currents(), atol=1e-9)
    assert np.all(np.diff(run.timeseries.test_time_s) >= 0)
    got = [(int(c.cycle_index), c.charge_capacity_ah, c.discharge_capacity_ah)
           for c in run.cycles.itertuples()]
    for (c, qc, qd), (ec, eqc, eqd) in zip(got, synth.expected_cycles(), strict=True):
        assert c == ec
        assert qc == pytest.approx(eqc, rel=1e-3)
        assert qd == pytest.approx(eqd, rel=1e-3)
    return run


def test_maccor_signed_current_minutes(tmp_path):
    f = tmp_path / "maccor.csv"
    f.write_text(synth.maccor_signed_minutes())
    run = _check(f, "maccor", tmp_path)
    assert any("minutes" in c for c in run.meta["source"]["conversions"])


def test_biologic_mpt_latin1_decimal_comma(tmp_path):
    f = tmp_path / "gcpl.mpt"
    f.write_bytes(synth.mpt_decimal_comma())
    run = _check(f, "biologic-mpt", tmp_path)
    np.testing.assert_allclose(run.timeseries.temperature_c, 25.0)
    assert run.meta["started_unix_s"] is not None


def test_arbin_csv(tmp_path):
    f = tmp_path / "arbin.csv"
    f.write_text(synth.arbin_csv())
    _check(f, "arbin-csv", tmp_path)


def test_arbin_xlsx(tmp_path):
    import openpyxl
    wb = openpyxl.Workbook()
    wb.active.title = "Global_Info"
    ws = wb.create_sheet("Channel_1-006")
    names, rows = synth.arbin_rows()
    ws.append(names)
    for row in rows:
        ws.append(row)
    f = tmp_path / "arbin.xlsx"
    wb.save(f)
    _check(f, "arbin-csv", tmp_path)


def test_pec_csv_milli_units(tmp_path):
    f = tmp_path / "pec.csv"
    f.write_text(synth.pec_csv())
    run = _check(f, "pec", tmp_path)
    np.testing.assert_allclose(run.timeseries.voltage_v.iloc[0], synth.profile()[0].voltage,
                               rtol=1e-6)


def test_neware_three_level_against_its_cycle_rows(tmp_path):
    f = tmp_path / "neware3.csv"
    f.write_text(synth.neware_three_level())
    run = _check(f, "neware-csv", tmp_path)
    vendor = run.meta["source"]["metadata"]["vendor_cycles"]
    for c in run.cycles.itertuples():
        assert c.charge_capacity_ah == pytest.approx(vendor[str(c.cycle_index)]["charge_ah"],
                                                     rel=1e-3)


def test_bdf_round_trip_through_labctl_export(vendor, tmp_path):
    from click.testing import CliRunner

    from labctl.cli import main

    first = import_file(vendor / "neware_uio.csv", tmp_path / "a")
    out = tmp_path / "x.bdf.csv"
    r = CliRunner().invoke(main, ["export", str(first.path), "--format", "bdf", "-o", str(out)])
    assert r.exit_code == 0, r.output
    again = open_run(import_file(out, tmp_path / "b").path)
    a = open_run(first.path)
    np.testing.assert_allclose(again.cycles.charge_capacity_ah, a.cycles.charge_capacity_ah,
                               rtol=1e-6)
    np.testing.assert_allclose(again.cycles.discharge_capacity_ah,
                               a.cycles.discharge_capacity_ah, rtol=1e-6)


def test_peis_mpt_sweeps_become_spectra_that_analyze_eis_fits(tmp_path):
    import json

    from click.testing import CliRunner

    from labctl.cli import main

    data, f, z = synth.peis_mpt(sweeps=2)
    path = tmp_path / "peis.mpt"
    path.write_bytes(data)
    r = import_file(path, tmp_path / "results")
    assert r.format == "biologic-mpt"
    spectra = open_run(r.path).records("spectra")
    assert sorted(spectra.step_index.unique()) == [1, 2]
    one = spectra[spectra.step_index == 2]
    np.testing.assert_allclose(one.frequency_hz, f, rtol=1e-9)
    np.testing.assert_allclose(one.z_imag_ohm, z.imag, rtol=1e-8)  # Im Z, not -Im Z
    a = CliRunner().invoke(main, ["analyze", "eis", str(r.path), "--circuit", "R0-p(R1,C1)",
                                  "--no-plots", "--json"])
    assert a.exit_code == 0, a.output
    params = json.loads(a.stdout)["summary"]["parameters"]
    assert params["R1"]["first"] == pytest.approx(0.08, rel=1e-3)
    assert params["R1"]["last"] == pytest.approx(0.08, rel=1e-3)
