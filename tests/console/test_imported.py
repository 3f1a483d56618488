"""Run pages of runs imported from vendor files (no procedure, no inputs, other record columns)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the console extra is not installed: pip install -e '.[console]'")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from labctl.console.app import ConsoleConfig, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor-data"


def _import(path: Path, results: Path) -> Path:
    r = subprocess.run([sys.executable, "-m", "labctl.cli", "import", str(path), "--results",
                        str(results), "--json"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    run = out["runs"][0]["path"]
    return Path(run)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    if not VENDOR.is_dir():
        pytest.skip(f"vendor files not found at {VENDOR}")
    results = tmp_path_factory.mktemp("imported")
    runs = {"neware": _import(VENDOR / "neware_uio.csv", results)}
    try:
        import galvani  # noqa: F401

        runs["biologic"] = _import(VENDOR / "biol.mpr", results)
    except ImportError:
        pass
    config = ConsoleConfig(results=results, procedures=None, stations=None, form_token="t" * 20)
    return results, runs, TestClient(create_app(config), base_url="http://127.0.0.1:8765")


def test_an_imported_cycler_file_has_a_run_page_plots_and_downloads(imported):
    results, runs, c = imported
    run = runs["neware"]
    page = c.get(f"/runs/{run.name}")
    assert page.status_code == 200 and "imported" in page.text
    plots = c.get(f"/runs/{run.name}/plots").json()
    import pandas as pd

    ts = pd.read_parquet(run / "timeseries.parquet")
    assert plots["n_samples"] == len(ts) and not plots["errors"]
    v = plots["traces"]["voltage_v"]["y"]
    assert max(v) == pytest.approx(ts["voltage_v"].max()) and min(v) == pytest.approx(ts["voltage_v"].min())
    assert c.get(f"/runs/{run.name}/download/bdf").status_code == 200
    listed = c.get("/runs?kind=imported").text
    assert run.name in listed
    assert run.name not in c.get("/runs?kind=recorded").text
    assert run.name not in c.get("/").text.split('id="tiles-data"')[1]  # not a bench


def test_imported_spectra_get_modulus_and_phase_from_re_and_im(imported):
    results, runs, c = imported
    if "biologic" not in runs:
        pytest.skip("galvani (import extra) is not installed: no .mpr import")
    spectra = c.get(f"/runs/{runs['biologic'].name}/plots").json()["spectra"]
    assert spectra
    for s in spectra:
        re, im = np.array(s["re"]), np.array(s["im"])
        assert np.allclose(s["mod"], np.hypot(re, im))
        assert np.allclose(s["phase"], np.degrees(np.arctan2(im, re)))
