"""Learned SoC estimators against the EKF on a held-out simulated drive-cycle run.

Truth: the simulated cell's SoC, reconstructed by coulomb counting from the full charge
with the cycler's exact current (the same reference for every estimator); the simulated
nmc-1p95ah cell follows its cell file's model, which the EKF is given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl.engine.session import prepare, start_run
from tests.support import REPO, json_out, labctl_cmd

pytest.importorskip("sklearn", reason="the optional extra labctl[learned] is not installed")


def _drive(root, profile, scale):
    prep = prepare(REPO / "procedures" / "drive-cycle.yaml",
                   station_path=REPO / "instruments" / "sim.yaml", cell_ref="nmc-1p95ah",
                   params={"profile": profile, "scale": scale, "rest_min": "10",
                           "profile_log_s": "2"})
    out = start_run(prep, results_root=root)
    assert out.status == "completed", out.reason
    return out.path


def test_learned_estimators_and_ekf_on_the_same_held_out_run(tmp_path):
    train = [_drive(tmp_path, "dst.csv", "0.9"), _drive(tmp_path, "urban.csv", "1.0")]
    held = _drive(tmp_path, "dst.csv", "0.7")
    proc = labctl_cmd("analyze", "soc-learned", str(held), "--train", str(train[0]),
                      "--train", str(train[1]), "--cell-file",
                      str(REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml"), "--json",
                      timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json_out(proc)["summary"]
    assert set(out["methods"]) == {"mlp", "svr", "ekf"}
    table = pd.read_parquet(held / "analysis" / "soc-learned" / "soc.parquet")
    ref = table["reference_soc"].to_numpy()
    assert ref[0] > 0.85 and ref[-1] < 0.1  # the profile runs the cell from ~90 % to empty
    trivial = np.sqrt(np.mean((ref - ref.mean()) ** 2))  # a constant guess
    for name in ("mlp", "svr"):
        err = table[f"{name}_soc"].to_numpy() - ref
        rmse = float(np.sqrt(np.mean(err**2)))
        assert rmse == pytest.approx(out["methods"][name]["rmse"], rel=1e-9)
        assert rmse < 0.05 and rmse < trivial / 5
    # The EKF has the true model: it should be the best of the three here.
    assert out["methods"]["ekf"]["rmse"] < 0.01
    assert out["methods"]["ekf"]["rmse"] <= min(out["methods"][m]["rmse"] for m in ("mlp", "svr"))
