"""A run keeps copies of exactly the files it used: procedure, included files, cell file
and the cell's CSV tables, station file — so the inputs/ folder alone reproduces it."""

from __future__ import annotations

import textwrap

from labctl.cells import load_cell
from labctl.engine.session import prepare, start_run
from tests.support import REPO


def test_inputs_hold_included_files_and_cell_tables(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "rest.yaml").write_text("steps:\n  - Rest for 2 min\n")
    proc = tmp_path / "proc.yaml"
    proc.write_text("steps:\n  - include: lib/rest.yaml\n  - Discharge at 1C for 1 min\n")
    tables = tmp_path / "cells" / "tables"
    tables.mkdir(parents=True)
    (tables / "ocv.csv").write_text("soc,ocv_v\n0,2.5\n0.2,3.2\n0.8,3.33\n1,3.5\n")
    lfp = (REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text()
    start = lfp.index("  ocv_v:")
    end = lfp.index("  r0_ohm:")
    cell_text = lfp[:start] + "  ocv_v: {csv: tables/ocv.csv, column: ocv_v}\n" + lfp[end:]
    (tmp_path / "cells" / "cell.yaml").write_text(cell_text)
    out = start_run(prepare(proc, cell_ref=str(tmp_path / "cells" / "cell.yaml")),
                    results_root=tmp_path / "r")
    assert out.status == "completed", out.reason
    inputs = out.path / "inputs"
    assert (inputs / "included" / "lib" / "rest.yaml").read_text() == (lib / "rest.yaml").read_text()
    assert (inputs / "tables" / "ocv.csv").read_text() == (tables / "ocv.csv").read_text()
    # The copied cell file loads on its own, from the copies beside it.
    copy = load_cell(inputs / "cell.yaml")
    assert list(copy.model.ocv_v.values) == [2.5, 3.2, 3.33, 3.5]
    assert textwrap.dedent((inputs / "procedure.yaml").read_text()) == proc.read_text()
