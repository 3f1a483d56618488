"""Analyses on runs another cycler recorded, protocols labctl did not write: a charge-only
GITT/EIS series (BioLogic .mpr) and a charge-only float test (Neware .ndax). What the runs
hold is read independently from the files (galvani, newarenda), not through labctl."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.analysis.cycling.runs import analyze_cycling, analyze_dqdv
from labctl.cli import main
from labctl.errors import LabctlError

NDAX = "20260302_IFE_BTS85_2_9_8_1.ndax"


def test_a_charge_only_run_has_no_full_cycle(vendor, imported):
    from galvani import BioLogic

    d = BioLogic.MPRfile(str(vendor / "biol.mpr")).data
    dq = d["dq/mA.h"]
    # the file's own truth: it charges ~5 mAh and discharges almost nothing (EIS excitation)
    assert -dq[dq < 0].sum() < 0.01 * dq[dq > 0].sum()
    tables, _, summary = analyze_cycling(imported("biol.mpr"), plots_on=False)
    assert tables["cycles"]["retention"].isna().all()
    assert summary["first_discharge_capacity_ah"] is None
    assert summary["median_coulombic_efficiency"] is None
    out = CliRunner().invoke(main, ["analyze", "cycling", str(imported("biol.mpr"))])
    assert out.exit_code == 0 and "no full cycle" in out.output


def test_small_cells_read_in_mah(vendor, imported):
    """Arbin half-cell of ~1.8 mAh: the printed capacities are the summary's, in mAh."""
    run = imported("20160805_test001_45_cc_01.res")
    _, _, summary = analyze_cycling(run, plots_on=False)
    first = summary["first_discharge_capacity_ah"]
    assert 1e-4 < first < 0.1
    out = CliRunner().invoke(main, ["analyze", "cycling", str(run)])
    assert out.exit_code == 0
    assert f"discharge capacity {1000 * first:.3f} -> " in out.output and " mAh " in out.output


def test_dqdv_of_a_charge_only_run_points_to_the_charge(vendor, imported):
    import NewareNDA

    df = NewareNDA.read(str(vendor / NDAX), software_cycle_number=False)
    assert (df["Current(mA)"] >= -1e-6).all()  # the file never discharges
    run = imported(NDAX)
    with pytest.raises(LabctlError, match="--direction charge"):
        analyze_dqdv(run, plots_on=False)
    _, _, summary = analyze_dqdv(run, direction="charge", plots_on=False)
    peaks = [v for p in summary["peaks"] for v in p["voltage_v"]]
    # The file's charge that moved the most is one CC-CV step: its CC part (current within
    # 2 % of the step's largest) ends at the CV voltage; the CV tail is no dQ/dV peak.
    main = df[df["Step_Index"] == df.groupby("Step_Index")["Charge_Capacity(mAh)"].max().idxmax()]
    i = main["Current(mA)"].to_numpy(float)
    cc = main["Voltage"].to_numpy(float)[: int(np.argmax(i < 0.98 * i.max()))]
    assert len(cc) < len(main)  # it does hold a CV tail
    assert peaks and all(cc.min() <= p < cc.max() - 0.01 for p in peaks)
