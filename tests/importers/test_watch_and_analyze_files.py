"""`--watch` imports a settled file once; `labctl analyze` on a plain file imports it first."""

from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner

from labctl import open_run
from labctl.cli import main
from labctl.importers.watch import watch


def test_watch_imports_each_file_once(vendor, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(vendor / "neware_uio.csv", inbox / "a.csv")
    res = tmp_path / "results"
    watch(inbox, str(res), settle_s=0.0, poll_s=0.01, max_polls=4)
    runs = [p for p in res.iterdir() if p.is_dir()]
    assert len(runs) == 1
    assert open_run(runs[0]).meta["source"]["file"] == "a.csv"


def test_analyze_on_a_plain_file_imports_it_once(vendor, tmp_path):
    res = tmp_path / "results"
    args = ["analyze", "cycling", str(vendor / "neware_uio.csv"), "--results", str(res), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0
    runs = [p for p in res.iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / "analysis" / "cycling").is_dir()


def test_analyze_eis_on_an_imported_spectrum(tmp_path):
    # a Randles circuit R0 + (R1 || C1): known parameters to recover
    f = np.logspace(5, -1, 50)
    w = 2 * np.pi * f
    z = 0.02 + 0.08 / (1 + 1j * w * 0.08 * 0.5)
    spec = tmp_path / "randles.csv"
    spec.write_text("Freq(Hz),Z'(a),Z''(b)\n" + "".join(
        f"{a:.10g},{b.real:.10g},{b.imag:.10g}\n" for a, b in zip(f, z, strict=True)))
    res = tmp_path / "results"
    r = CliRunner().invoke(main, ["import", str(spec), "--results", str(res), "--json"])
    assert r.exit_code == 0, r.output
    run_dir = json.loads(r.stdout)["runs"][0]["path"]
    spectra = open_run(run_dir).records("spectra")
    np.testing.assert_allclose(spectra.z_imag_ohm, z.imag, rtol=1e-8)
    a = CliRunner().invoke(main, ["analyze", "eis", run_dir, "--circuit", "R0-p(R1,C1)",
                                  "--no-plots", "--json"])
    assert a.exit_code == 0, a.output
    params = json.loads(a.stdout)["summary"]["parameters"]
    assert abs(params["R0"]["first"] - 0.02) < 1e-4
    assert abs(params["R1"]["first"] - 0.08) < 1e-4
