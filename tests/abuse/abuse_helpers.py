"""Shared helpers for the abuse tests: station files and runs on the simulated abuse bench."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from labctl.engine.session import prepare, start_run
from labctl.store.run import open_run
from tests.support import REPO

NMC = str(REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml")


def station(tmp: Path, **settings) -> Path:
    """instruments/sim-abuse.yaml with chamber settings replaced or added."""
    text = (REPO / "instruments" / "sim-abuse.yaml").read_text()
    for key, value in settings.items():
        line = f"    {key}: {value}"
        if re.search(rf"^    {key}:.*$", text, re.M):
            text = re.sub(rf"^    {key}:.*$", line, text, flags=re.M)
        else:
            text = text.rstrip("\n") + "\n" + line + "\n"
    path = tmp / f"station-{abs(hash(tuple(sorted(settings.items()))))}.yaml"
    path.write_text(text)
    return path


def proc(tmp: Path, body: str, name: str = "proc.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return path


def run(procedure: Path | str, station_path: Path, tmp: Path, params=None, cell: str = NMC):
    prep = prepare(procedure, station_path=station_path, cell_ref=cell, params=params or {})
    out = start_run(prep, results_root=tmp / "results")
    return out, open_run(out.path)
