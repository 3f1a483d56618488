"""A writer killed between creating and renaming an analysis file leaves a temporary
file; the next analysis that completes in that folder removes it, and only files last
written before it started (a writer still going keeps its own)."""

from __future__ import annotations

import os
import time

import pandas as pd

from labctl.store.analysis import analysis_folder, save_analysis


def test_a_killed_writers_leftover_goes_and_a_live_writers_stays(tmp_path):
    folder = analysis_folder(tmp_path, "cycling")
    stale = folder / ".cycles.parquet.k1ll3d.tmp"  # what atomic_path names its temp files
    stale.write_bytes(b"half a parquet")
    old = time.time() - 5
    os.utime(stale, (old, old))
    live = folder / ".summary.json.l1v3.tmp"
    live.write_bytes(b"{")
    later = time.time() + 60  # written after this analysis started
    os.utime(live, (later, later))
    keep = folder / "notes.tmp"  # not an atomic-write temp file: never touched
    keep.write_text("mine")

    save_analysis(tmp_path, "cycling", tables={"cycles": pd.DataFrame({"x": [1.0, 2.0]})},
                  summary={"n": 2})

    assert not stale.exists()
    assert live.exists() and keep.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".summary.json.l1v3.tmp", "cycles.parquet", "notes.tmp", "summary.json"])
    assert pd.read_parquet(folder / "cycles.parquet")["x"].tolist() == [1.0, 2.0]


def test_a_failed_analysis_removes_nothing(tmp_path):
    folder = analysis_folder(tmp_path, "cycling")
    stale = folder / ".cycles.parquet.k1ll3d.tmp"
    stale.write_bytes(b"half a parquet")
    old = time.time() - 5
    os.utime(stale, (old, old))
    try:
        save_analysis(tmp_path, "cycling", tables={"bad name!": pd.DataFrame({"x": [1]})})
    except Exception:
        pass
    assert stale.exists()  # the analysis did not complete: it proves nothing about others
