"""Fixtures for the procedure tests: cells and stations built directly (no file loaders)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labctl.cells.spec import CellSpec
from labctl.stations.spec import StationSpec
from tests.procedures.helpers import make_cell, make_station


@pytest.fixture
def lfp() -> CellSpec:
    """LFP-like 2.2 Ah, 3.65 / 2.5 V, 1C charge, 3C discharge."""
    return make_cell("lfp-2p2ah", 2.2, 3.65, 2.5, 1.0, 3.0)


@pytest.fixture
def nmc() -> CellSpec:
    """NMC-like 1.95 Ah, 4.2 / 2.75 V."""
    return make_cell("nmc-1p95ah", 1.95, 4.2, 2.75, 1.0, 2.0)


@pytest.fixture
def lto() -> CellSpec:
    """LTO-like 1.8 Ah, 2.85 / 1.8 V, up to 10C."""
    return make_cell("lto-1p8ah", 1.8, 2.85, 1.8, 10.0, 10.0)


@pytest.fixture
def bench() -> StationSpec:
    return make_station()


@pytest.fixture
def bench_chamber() -> StationSpec:
    return make_station(chamber=True)


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) -> Path; text is dedented."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
