"""State of health from impedance on a simulated cycle-life run with spectra in every RPT.

Truth: the RPT capacities the run measured (independent of impedance) and the documented
ageing law of the simulated spectrum, R = R_fresh (1 + g (1 - capacity fraction)) with
g = 3.0 (resistance_growth_per_fade of the cell file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labctl.engine.session import prepare, start_run
from tests.support import REPO, json_out, labctl_cmd


def test_soh_from_one_spectrum_on_held_out_rpts(tmp_path):
    # ssb-eis with a fast cycle fade so 72 cycles age it by ~13 %.
    text = (REPO / "fixtures" / "cells" / "ssb-eis.yaml").read_text()
    assert "cycle_fade_per_sqrt_efc: 0.0023" in text
    cell = tmp_path / "ssb-fast.yaml"
    cell.write_text(text.replace("cycle_fade_per_sqrt_efc: 0.0023", "cycle_fade_per_sqrt_efc: 0.06"))
    prep = prepare(REPO / "procedures" / "cycle-life-eis.yaml",
                   station_path=REPO / "instruments" / "sim.yaml", cell_ref=str(cell),
                   params={"cycles_per_rpt": "8", "max_blocks": "8", "retention_pct": "50",
                           "rest_min": "2", "rpt_rest_min": "5", "points_per_decade": "4"})
    out = start_run(prep, results_root=tmp_path / "results")
    assert out.status == "completed", out.reason
    proc = labctl_cmd("analyze", "soh-eis", str(out.path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json_out(proc)["summary"]
    folder = out.path / "analysis" / "soh-eis"
    growth = pd.read_parquet(folder / "growth.parquet")
    soh = pd.read_parquet(folder / "soh.parquet")
    ret = growth["retention"].to_numpy()
    assert len(ret) == 9 and ret[-1] < 0.92 and np.all(np.diff(ret) < 0)  # the premise
    # The series resistance (SoC-independent above 30 %) follows the ageing law; the
    # measured C/3 retention is a little below the true capacity fraction (the grown
    # resistance reaches the cut-off earlier), so the law brackets it.
    law = 1 + 3.0 * (1 - ret)
    r0 = growth["R0_growth"].to_numpy()
    assert np.all(r0 <= law + 0.01) and np.all(r0 >= 1 + 0.8 * (law - 1) - 0.01)
    assert np.all(np.diff(growth["r_dc_ohm"]) > 0)
    # SoH from one spectrum against the measured retention of held-out RPTs.
    held = soh[soh["held_out"]]
    err = held["retention_estimate"] - held["retention"]
    assert len(held) == 4 and np.sqrt(np.mean(err**2)) < 0.01 and np.max(np.abs(err)) < 0.02
    assert summary["held_out_rmse"] < 0.01
    assert (folder / "soh-eis.png").is_file()
