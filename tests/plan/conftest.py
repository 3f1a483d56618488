"""Shared by the plan tests: a cell that does not age, and a way to write procedures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import REPO


@pytest.fixture
def steady_cell(tmp_path: Path) -> Path:
    """The default LFP cell without its ageing model: its cycles repeat exactly."""
    data = yaml.safe_load((REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text())
    data["model"].pop("ageing", None)
    data["name"] = "LFP 2.2 Ah (no ageing)"
    path = tmp_path / "steady-cell.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path
