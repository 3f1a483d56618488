"""CAN files read on someone else's say-so: a FIFO or a damaged file is refused by name."""

from __future__ import annotations

import os

import pytest

from labctl.can.dbc import load_dbc
from labctl.can.framelog import load_run_map
from labctl.errors import LabctlError


def test_a_fifo_given_as_dbc_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "bms.dbc"
    os.mkfifo(fifo)  # a plain open() would block for ever waiting for a writer
    with pytest.raises(LabctlError, match=r"bms\.dbc.*FIFO"):
        load_dbc(fifo)


def test_a_missing_dbc_names_the_file(tmp_path):
    with pytest.raises(LabctlError, match=r"missing\.dbc: No such file"):
        load_dbc(tmp_path / "missing.dbc")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_damaged_signal_map_names_the_file(tmp_path, content):
    folder = tmp_path / "run" / "can"
    folder.mkdir(parents=True)
    (folder / "signal_map.json").write_text(content)
    with pytest.raises(LabctlError, match=r"signal_map\.json"):
        load_run_map(tmp_path / "run")
