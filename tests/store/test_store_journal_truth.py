"""The run journal: exact round trip, torn and corrupt tails, append after a crash, and a
real SIGKILL of a writing process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from labctl.records import SAMPLE_COLUMNS
from labctl.store.journal import JOURNAL_NAME, JournalWriter, read_journal

REPO = Path(__file__).resolve().parents[2]


def _block(k: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Block k of n rows with every column's dtype exercised (NaN, extremes)."""
    rows = np.arange(k * n, (k + 1) * n)
    cols = {}
    for name, dtype in SAMPLE_COLUMNS.items():
        if dtype.kind == "i":
            cols[name] = (rows % 7 + k).astype(dtype)
        else:
            cols[name] = rng.normal(size=n).astype(dtype) * 10.0 ** k
    cols["test_time_s"] = 1000.0 * k + np.arange(n)  # unique across blocks
    cols["temperature_c"][0] = np.nan
    cols["voltage_v"][-1] = np.finfo(float).max
    return cols


def _concat(blocks):
    return {name: np.concatenate([b[name] for b in blocks]) for name in SAMPLE_COLUMNS}


def _assert_samples_equal(got, want):
    assert list(got) == list(SAMPLE_COLUMNS)
    for name, dtype in SAMPLE_COLUMNS.items():
        assert got[name].dtype == dtype
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _write_journal(folder: Path, records) -> list[int]:
    """Write records ("event", dict) / ("samples", cols); return the file size after each."""
    w = JournalWriter.create(folder)
    sizes = []
    for kind, payload in records:
        if kind == "event":
            w.append_event(payload)
        else:
            w.append_samples(payload)
        sizes.append((folder / JOURNAL_NAME).stat().st_size)
    w.close()
    return sizes


def _records(rng):
    blocks = [_block(k, n, rng) for k, n in enumerate((5, 1, 17, 3))]
    events = [{"type": "step_start", "step_index": 1, "text": "Ünïcode ✓"},
              {"type": "log", "value": 1.5, "nested": {"a": [1, 2, None]}},
              {"type": "step_end", "step_index": 1, "nan": float("nan")}]
    return [("event", events[0]), ("samples", blocks[0]), ("samples", blocks[1]),
            ("event", events[1]), ("samples", blocks[2]), ("event", events[2]),
            ("samples", blocks[3])], events, blocks


def test_round_trip_is_exact(tmp_path):
    records, events, blocks = _records(np.random.default_rng(0))
    sizes = _write_journal(tmp_path, records)
    data = read_journal(tmp_path)
    assert data.torn_tail is False
    assert data.valid_bytes == sizes[-1] == (tmp_path / JOURNAL_NAME).stat().st_size
    assert len(data.events) == 3
    assert data.events[0] == events[0] and data.events[1] == events[1]
    assert data.events[2]["type"] == "step_end" and np.isnan(data.events[2]["nan"])
    _assert_samples_equal(data.samples, _concat(blocks))


def test_empty_journal_has_header_only(tmp_path):
    JournalWriter.create(tmp_path).close()
    data = read_journal(tmp_path)
    assert data.events == [] and data.torn_tail is False
    assert all(len(v) == 0 for v in data.samples.values())


def _expected_before_last(records):
    events = [p for k, p in records[:-1] if k == "event"]
    blocks = [p for k, p in records[:-1] if k == "samples"]
    return events, blocks


def _check_prefix(folder: Path, records, start_of_last: int):
    data = read_journal(folder)
    events, blocks = _expected_before_last(records)
    assert data.torn_tail is True
    assert data.valid_bytes == start_of_last
    assert [e["type"] for e in data.events] == [e["type"] for e in events]
    _assert_samples_equal(data.samples, _concat(blocks))


@pytest.mark.parametrize("last", ["samples", "event"])
def test_truncation_at_every_byte_of_the_last_record(tmp_path, last):
    rng = np.random.default_rng(1)
    records, _, _ = _records(rng)
    if last == "event":
        records = records + [("event", {"type": "log", "message": "x" * 40})]
    src = tmp_path / "src"
    src.mkdir()
    sizes = _write_journal(src, records)
    full = (src / JOURNAL_NAME).read_bytes()
    start, end = sizes[-2], sizes[-1]
    assert end == len(full) and end - start > 20
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    for cut in range(start + 1, end):
        (cut_dir / JOURNAL_NAME).write_bytes(full[:cut])
        _check_prefix(cut_dir, records, start)
    # Cut exactly at the record boundary: nothing torn, the last record simply absent.
    (cut_dir / JOURNAL_NAME).write_bytes(full[:start])
    data = read_journal(cut_dir)
    assert data.torn_tail is False and data.valid_bytes == start


def test_a_flipped_byte_anywhere_in_the_last_record_is_detected(tmp_path):
    records, _, _ = _records(np.random.default_rng(2))
    src = tmp_path / "src"
    src.mkdir()
    sizes = _write_journal(src, records)
    full = bytearray((src / JOURNAL_NAME).read_bytes())
    start, end = sizes[-2], sizes[-1]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for pos in range(start, end):
        corrupt = bytearray(full)
        corrupt[pos] ^= 0xFF
        (bad_dir / JOURNAL_NAME).write_bytes(bytes(corrupt))
        _check_prefix(bad_dir, records, start)


def test_open_for_append_after_a_torn_tail_continues_cleanly(tmp_path):
    rng = np.random.default_rng(3)
    records, _, _ = _records(rng)
    src = tmp_path / "src"
    src.mkdir()
    sizes = _write_journal(src, records)
    full = (src / JOURNAL_NAME).read_bytes()
    start, end = sizes[-2], sizes[-1]
    _, blocks_before = _expected_before_last(records)
    last_block = records[-1][1]
    extra = _block(9, 4, rng)
    offsets = sorted({start + 1, start + 5, start + 12, start + 13, start + 14,
                      (start + end) // 2, end - 1})
    for cut in offsets:
        run = tmp_path / f"cut{cut}"
        run.mkdir()
        (run / JOURNAL_NAME).write_bytes(full[:cut])
        w = JournalWriter.open_for_append(run)
        # The resumed writer rewrites what was lost, then goes on.
        w.append_samples(last_block)
        w.append_event({"type": "resume", "cut": cut})
        w.append_samples(extra)
        w.close()
        data = read_journal(run)
        assert data.torn_tail is False
        assert data.valid_bytes == (run / JOURNAL_NAME).stat().st_size
        _assert_samples_equal(data.samples, _concat([*blocks_before, last_block, extra]))
        assert data.events[-1] == {"type": "resume", "cut": cut}
        t = data.samples["test_time_s"]
        assert len(np.unique(t)) == len(t)  # no duplicate rows


def test_open_for_append_on_an_intact_journal_keeps_everything(tmp_path):
    records, _, blocks = _records(np.random.default_rng(4))
    _write_journal(tmp_path, records)
    extra = _block(8, 6, np.random.default_rng(5))
    w = JournalWriter.open_for_append(tmp_path)
    w.append_samples(extra)
    w.close()
    data = read_journal(tmp_path)
    assert data.torn_tail is False
    _assert_samples_equal(data.samples, _concat([*blocks, extra]))


# -- a real crash ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from labctl.records import SAMPLE_COLUMNS
    from labctl.store.journal import JournalWriter

    run_dir, n = sys.argv[1], int(sys.argv[2])
    w = JournalWriter.create(run_dir, fsync_interval_s=3600.0)
    k = 0
    while True:
        rows = np.arange(k * n, (k + 1) * n)
        cols = {name: (rows % 1000).astype(dt) for name, dt in SAMPLE_COLUMNS.items()}
        cols["test_time_s"] = rows.astype(float)
        cols["step_index"] = np.full(n, k, dtype=np.int32)
        w.append_samples(cols)
        w.append_event({"type": "log", "block": k})
        w.sync()
        print(k, flush=True)
        k += 1
""")


def test_sigkill_keeps_every_synced_block_exactly_once_in_order(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    n = 8_000  # 700 kB a block: kills land mid-write as well as between records
    rnd = random.Random(12345)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for trial in range(5):
        run = tmp_path / f"run{trial}"
        run.mkdir()
        proc = subprocess.Popen([sys.executable, str(script), str(run), str(n)],
                                stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        reported = [int(proc.stdout.readline())]  # wait for the first synced block
        time.sleep(rnd.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        # The same text stream as readline() (its buffer may hold further lines, which
        # communicate(timeout=...) would skip: it reads the file descriptor).
        out = proc.stdout.read()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        reported += [int(x) for x in out.split()]
        assert reported == list(range(len(reported)))

        data = read_journal(run)
        blocks = data.samples["step_index"]
        m = len(blocks) // n
        assert len(blocks) == m * n  # whole blocks only
        assert m >= len(reported)  # every reported (synced) block is there
        # Each block exactly once, in order, with its own rows.
        np.testing.assert_array_equal(blocks, np.repeat(np.arange(m, dtype=np.int32), n))
        np.testing.assert_array_equal(data.samples["test_time_s"], np.arange(m * n, dtype=float))
        assert [e["block"] for e in data.events] in (list(range(m)), list(range(m - 1)))

        # The journal can be continued after the crash.
        w = JournalWriter.open_for_append(run)
        w.append_event({"type": "resume"})
        w.close()
        again = read_journal(run)
        assert again.torn_tail is False
        assert again.events[-1] == {"type": "resume"}
        assert len(again.samples["test_time_s"]) == m * n
