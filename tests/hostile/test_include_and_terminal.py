"""Includes that multiply, includes that are not files, and text that is not text.

Issue 13 §3: includes 8-wide and 11 deep grew `validate` past 840 MB and a minute
(Medium); a FIFO as an include or a procedure blocks for ever (High: open only
regular files); control characters and rich markup from files reached the
terminal (Low).
"""

from __future__ import annotations

import os
import time

from labctl.procedures.includes import MAX_COMPILED_ITEMS
from tests.support import json_out, labctl_cmd


def _include_tree(folder, width: int, depth: int):
    """level0 includes level1 `width` times, ..., the last level holds one step."""
    for level in range(depth):
        body = "".join(f"  - include: level{level + 1}.yaml\n" for _ in range(width))
        (folder / f"level{level}.yaml").write_text(f"name: l{level}\nsteps:\n{body}")
    (folder / f"level{depth}.yaml").write_text("name: leaf\nsteps:\n  - Rest for 1 s\n")
    return folder / "level0.yaml"


def test_includes_eight_wide_eleven_deep_are_refused_quickly(tmp_path):
    top = _include_tree(tmp_path, width=8, depth=11)  # 8**11 = 8.6e9 steps if compiled
    started = time.monotonic()
    proc = labctl_cmd("validate", str(top), "--json", timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    (problem,) = json_out(proc)["problems"]
    assert f"more than {MAX_COMPILED_ITEMS} step items" in problem["message"]
    assert problem["file"] and problem["line"]
    assert elapsed < 60  # not a timing target: 8.6e9 steps would never finish at all


def test_includes_below_the_cap_still_compile(tmp_path):
    top = _include_tree(tmp_path, width=4, depth=3)  # 64 steps
    proc = labctl_cmd("validate", str(top), "--json")
    assert proc.returncode == 0, proc.stdout


def test_fifo_as_include_or_procedure_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "top.yaml").write_text("name: t\nsteps:\n  - include: pipe.yaml\n")
    proc = labctl_cmd("validate", str(tmp_path / "top.yaml"), "--json", timeout=60)
    (problem,) = json_out(proc)["problems"]
    assert proc.returncode == 2 and "FIFO" in problem["message"]
    proc = labctl_cmd("validate", str(tmp_path / "pipe.yaml"), timeout=60)
    assert proc.returncode == 2 and "FIFO" in proc.stderr
    os.mkfifo(tmp_path / "pipe.py")  # a Python procedure
    proc = labctl_cmd("validate", str(tmp_path / "pipe.py"), timeout=60)
    assert proc.returncode == 2 and "FIFO" in proc.stderr


def test_control_characters_and_markup_from_files_are_escaped(tmp_path):
    proc_file = tmp_path / "evil.yaml"
    # An escape sequence that retitles the terminal, a bell, rich markup and an emoji code,
    # in a key the error message quotes back.
    proc_file.write_text('name: x\n"bad \\e]0;pwned\\a [bold red]x[/] :smile: key": 1\n'
                         'steps:\n  - Rest for 1 s\n')
    proc = labctl_cmd("validate", str(proc_file), env={"COLUMNS": "200"})
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "\\x1b]0;pwned\\x07" in proc.stderr
    assert "[bold red]x[/]" in proc.stderr and ":smile:" in proc.stderr


def test_profile_table_that_is_a_fifo_or_device_is_refused(tmp_path):
    import pytest

    from labctl.errors import LabctlError
    from labctl.steps.profile import read_profile_csv

    os.mkfifo(tmp_path / "drive.csv")
    os.symlink("/dev/zero", tmp_path / "zero.csv")
    with pytest.raises(LabctlError, match="FIFO"):
        read_profile_csv(tmp_path / "drive.csv")
    with pytest.raises(LabctlError, match="device"):
        read_profile_csv(tmp_path / "zero.csv")


def test_control_characters_in_names_never_reach_the_terminal(tmp_path):
    """Any command's output (here `validate`'s ok line, naming the station), not only errors."""
    from tests.support import REPO

    station = tmp_path / "st.yaml"
    sim = (REPO / "instruments" / "sim.yaml").read_text()
    station.write_text(sim.replace("name: Simulated bench", 'name: "bench \\e[2J\\e]0;pwned\\a A"'))
    proc = labctl_cmd("validate", str(REPO / "procedures" / "quickstart.yaml"), "--station",
                      str(station))
    assert proc.returncode == 0, proc.stderr
    assert "bench \\x1b[2J\\x1b]0;pwned" in proc.stdout
    assert "\x1b" not in proc.stdout
