"""The journal: exact round trips, damage anywhere, crash-and-continue, write failures,
and real SIGKILLs of a writing process."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store import journal as jmod
from labctl.store import journal_reader
from labctl.store.journal import (
    JOURNAL_NAME,
    JournalWriter,
    iter_sample_blocks,
    read_events,
    read_journal,
    rewrite_journal,
)

REPO = Path(__file__).resolve().parents[2]


def block(k: int, n: int) -> dict[str, np.ndarray]:
    """Block k: rows numbered globally so a lost or repeated row is visible."""
    rows = np.arange(k * 1000, k * 1000 + n)
    cols = {name: (rows * 0.5 + j).astype(dt) for j, (name, dt) in enumerate(SAMPLE_COLUMNS.items())}
    cols["test_time_s"] = rows.astype(np.float64)
    cols["step_index"] = np.full(n, k, np.int32)
    if n:
        cols["temperature_c"][0] = np.nan
        cols["voltage_v"][-1] = -0.0
    return cols


def concat(blocks: list[dict]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([b[name] for b in blocks]) if blocks else np.empty(0, dt)
            for name, dt in SAMPLE_COLUMNS.items()}


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(SAMPLE_COLUMNS)
    for name, dt in SAMPLE_COLUMNS.items():
        assert got[name].dtype == dt, name
        # Bitwise: NaN and -0.0 must come back exactly.
        assert got[name].tobytes() == np.asarray(want[name], dt).tobytes(), name


def write(folder: Path, records: list) -> list[int]:
    """Append the records; return the journal size before each one and at the end."""
    sizes = []
    with JournalWriter.create(folder) as w:
        for kind, item in records:
            sizes.append(w.size)
            (w.append_event if kind == "event" else w.append_samples)(item)
        sizes.append(w.size)
    assert sizes[-1] == (folder / JOURNAL_NAME).stat().st_size
    return sizes


RECORDS = [("event", {"type": "step_start", "step_index": 1, "text": "Laden bis 3,65 V ✓"}),
           ("samples", block(0, 4)), ("samples", block(1, 1)),
           ("event", {"type": "log", "level": "info", "message": "x", "deep": {"a": [1, None]}}),
           ("samples", block(2, 23)), ("event", {"type": "brand-new-kind", "v": 2})]


def test_round_trip_is_bitwise_exact_and_in_order(tmp_path):
    write(tmp_path, RECORDS)
    data = read_journal(tmp_path)
    assert not data.torn_tail and not data.corrupt_ranges
    assert data.events == [r[1] for r in RECORDS if r[0] == "event"]  # unknown types kept
    assert_same(data.samples, concat([r[1] for r in RECORDS if r[0] == "samples"]))
    streamed = list(iter_sample_blocks(tmp_path))
    assert [len(b["test_time_s"]) for b in streamed] == [4, 1, 23]
    assert_same(concat(streamed), data.samples)
    assert read_events(tmp_path) == data.events


def test_the_file_starts_with_a_header_naming_format_and_columns(tmp_path):
    write(tmp_path, [])
    raw = (tmp_path / JOURNAL_NAME).read_bytes()
    magic, kind, length, crc = struct.unpack_from("<IBII", raw, 0)
    payload = raw[13:13 + length]
    assert (magic, kind, zlib.crc32(payload)) == (0x4C424A31, 1, crc)
    header = json.loads(payload)
    assert header["type"] == "journal_header" and header["format_version"] == 2
    assert header["sample_dtype"] == [[n, d.str] for n, d in SAMPLE_COLUMNS.items()]
    assert len(raw) == 13 + length  # nothing else in an empty journal


def test_numpy_values_in_events_are_stored_as_numbers(tmp_path):
    with JournalWriter.create(tmp_path) as w:
        w.append_event({"type": "state", "instruments": {"cycler": {
            "soc": np.float32(0.5), "n": np.int64(7), "rc": np.array([1.0, 2.0])}}})
    (event,) = read_journal(tmp_path).events
    assert event["instruments"]["cycler"] == {"soc": 0.5, "n": 7, "rc": [1.0, 2.0]}


def _cut_and_flip_cases(tmp_path: Path, last: tuple) -> None:
    src = tmp_path / "src"
    src.mkdir()
    records = RECORDS[:-1] + [last]
    sizes = write(src, records)
    full = (src / JOURNAL_NAME).read_bytes()
    start, end = sizes[-2], sizes[-1]
    want_events = [r[1] for r in records[:-1] if r[0] == "event"]
    want_samples = concat([r[1] for r in records[:-1] if r[0] == "samples"])
    case = tmp_path / "case"
    case.mkdir()
    damaged = [full[:cut] for cut in range(start + 1, end)]  # torn at every byte
    for pos in range(start, end):  # or one byte flipped anywhere in the last record
        flipped = bytearray(full)
        flipped[pos] ^= 0x5A
        damaged.append(bytes(flipped))
    for raw in damaged:
        (case / JOURNAL_NAME).write_bytes(raw)
        data = read_journal(case)
        assert data.torn_tail and data.valid_bytes == start and not data.corrupt_ranges
        assert data.events == want_events
        assert_same(data.samples, want_samples)


def test_damaged_last_sample_record_is_ignored_and_the_rest_kept(tmp_path):
    _cut_and_flip_cases(tmp_path, ("samples", block(7, 2)))


def test_damaged_last_event_record_is_ignored_and_the_rest_kept(tmp_path):
    _cut_and_flip_cases(tmp_path, ("event", {"type": "log", "message": "last words"}))


def test_continuing_after_a_cut_at_every_offset_loses_and_repeats_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sizes = write(src, RECORDS[:-1] + [("samples", block(3, 1))])
    full = (src / JOURNAL_NAME).read_bytes()
    start, end = sizes[-2], sizes[-1]
    before = [r[1] for r in RECORDS[:-1] if r[0] == "samples"]
    for cut in range(start, end + 1):
        run = tmp_path / f"c{cut}"
        run.mkdir()
        (run / JOURNAL_NAME).write_bytes(full[:cut])
        with JournalWriter.open_for_append(run) as w:
            w.append_event({"type": "resume", "session": 2})
            w.append_samples(block(4, 2))
        data = read_journal(run)
        assert not data.torn_tail and data.valid_bytes == (run / JOURNAL_NAME).stat().st_size
        kept = [block(3, 1)] if cut == end else []
        assert_same(data.samples, concat([*before, *kept, block(4, 2)]))
        assert data.events[-1] == {"type": "resume", "session": 2}


def test_damage_in_the_middle_hides_nothing_after_it(tmp_path):
    records = [("samples", block(k, 5)) for k in range(6)]
    sizes = write(tmp_path, records)
    raw = bytearray((tmp_path / JOURNAL_NAME).read_bytes())
    a, b = sizes[2], sizes[3]  # the third block
    raw[a + 20] ^= 0xFF
    (tmp_path / JOURNAL_NAME).write_bytes(bytes(raw))
    data = read_journal(tmp_path)
    assert data.corrupt_ranges == [(a, b)] and not data.torn_tail
    assert_same(data.samples, concat([r[1] for k, r in enumerate(records) if k != 2]))
    # Appending would bury the damage; the writer refuses and names the repair.
    with pytest.raises(LabctlError, match="doctor --repair"):
        JournalWriter.open_for_append(tmp_path)
    aside = rewrite_journal(tmp_path)
    assert aside.read_bytes() == bytes(raw)  # the original is kept byte for byte
    fixed = read_journal(tmp_path)
    assert not fixed.corrupt_ranges and not fixed.torn_tail
    assert_same(fixed.samples, data.samples)
    with JournalWriter.open_for_append(tmp_path) as w:
        w.append_samples(block(9, 1))
    assert len(read_journal(tmp_path).samples["test_time_s"]) == 5 * 5 + 1


def test_a_journal_from_a_writer_with_other_columns_is_read_by_name(tmp_path):
    # An older writer without temperature, with an extra column we do not know.
    cols = [(n, d) for n, d in SAMPLE_COLUMNS.items() if n != "temperature_c"]
    cols.append(("pressure_mpa", np.dtype("<f8")))
    header = dict(jmod.header_event(), sample_dtype=[[n, d.str] for n, d in cols])
    src = block(0, 3)
    src["pressure_mpa"] = np.array([0.1, 0.2, 0.3])
    payload = struct.pack("<I", 3) + b"".join(np.asarray(src[n], d).tobytes() for n, d in cols)
    raw = b""
    for kind, body in ((1, json.dumps(header).encode()), (2, payload)):
        raw += struct.pack("<IBII", 0x4C424A31, kind, len(body), zlib.crc32(body)) + body
    (tmp_path / JOURNAL_NAME).write_bytes(raw)
    got = read_journal(tmp_path).samples
    for name in SAMPLE_COLUMNS:
        if name == "temperature_c":
            assert np.isnan(got[name]).all()
        else:
            np.testing.assert_array_equal(got[name], src[name])
    with pytest.raises(LabctlError, match="columns differ"):
        JournalWriter.open_for_append(tmp_path)


def test_newer_format_and_foreign_files_are_refused_clearly(tmp_path):
    body = json.dumps(dict(jmod.header_event(), format_version=99)).encode()
    (tmp_path / JOURNAL_NAME).write_bytes(
        struct.pack("<IBII", 0x4C424A31, 1, len(body), zlib.crc32(body)) + body)
    with pytest.raises(LabctlError, match="format 99 is newer"):
        read_journal(tmp_path)
    (tmp_path / JOURNAL_NAME).write_bytes(b"PAR1 this is something else entirely")
    with pytest.raises(LabctlError, match="not a labctl journal"):
        read_journal(tmp_path)
    with pytest.raises(LabctlError, match="no journal"):
        read_journal(tmp_path / "nowhere")


def test_bad_sample_blocks_are_programming_errors_with_clear_messages(tmp_path):
    with JournalWriter.create(tmp_path) as w:
        short = block(0, 3)
        short["voltage_v"] = short["voltage_v"][:2]
        with pytest.raises(ValueError, match="voltage_v has 2 rows, expected 3"):
            w.append_samples(short)
        missing = block(0, 3)
        del missing["current_a"]
        with pytest.raises(ValueError, match="current_a"):
            w.append_samples(missing)
        with pytest.raises(ValueError, match="'type'"):
            w.append_event({"no": "type"})
    assert read_journal(tmp_path).samples["test_time_s"].size == 0  # nothing half-written


def test_large_blocks_are_split_into_records_and_read_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(jmod, "_MAX_ROWS_PER_RECORD", 1000)
    # records straddle many read chunks
    monkeypatch.setattr(journal_reader, "_CHUNK", 4096)
    big = {n: np.arange(2500).astype(d) for n, d in SAMPLE_COLUMNS.items()}
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(big)
        w.append_event({"type": "log", "message": "after"})
    assert [len(b["test_time_s"]) for b in iter_sample_blocks(tmp_path)] == [1000, 1000, 500]
    data = read_journal(tmp_path)
    assert_same(data.samples, big)
    assert data.events == [{"type": "log", "message": "after"}]


def test_one_writer_at_a_time(tmp_path):
    with JournalWriter.create(tmp_path):
        with pytest.raises(LabctlError, match="another process is writing"):
            JournalWriter.open_for_append(tmp_path)
    JournalWriter.open_for_append(tmp_path).close()  # free again once closed
    with pytest.raises(LabctlError, match="already exists"):
        JournalWriter.create(tmp_path)


def test_disk_full_mid_record_raises_and_leaves_a_valid_journal(tmp_path, monkeypatch):
    w = JournalWriter.create(tmp_path)
    w.append_samples(block(0, 5))
    real_writev = os.writev

    def full_disk(fd, buffers):
        # Part of the record reaches the file, then the disk is full.
        os.write(fd, bytes(memoryview(buffers[0]))[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full_disk)
    with pytest.raises(LabctlError, match="disk is full.*safe"):
        w.append_samples(block(1, 5))
    monkeypatch.setattr(os, "writev", real_writev)
    data = read_journal(tmp_path)
    assert not data.torn_tail  # the partial record was cut again
    assert_same(data.samples, block(0, 5))
    w.append_samples(block(2, 2))  # space freed: appending goes on cleanly
    w.close()
    assert_same(read_journal(tmp_path).samples, concat([block(0, 5), block(2, 2)]))


def test_read_only_file_system_is_a_clear_error(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(LabctlError, match="journal.bin: cannot create the journal: the file "
                                          "system is read-only"):
        JournalWriter.create(tmp_path)
    with pytest.raises(LabctlError, match="read-only"):
        JournalWriter.open_for_append(tmp_path)


def test_fsync_happens_on_its_own_thread_even_when_no_append_follows(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(threading.current_thread() is threading.main_thread())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    w = JournalWriter.create(tmp_path, fsync_interval_s=0.05)
    synced.clear()
    w.append_samples(block(0, 3))  # just after the create's sync: not yet due
    deadline = time.monotonic() + 20  # generous: this checks that it happens, not how fast
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert synced == [False], "the waiting data was not fsynced by the background thread"
    time.sleep(0.06)
    w.append_samples(block(1, 3))  # due at this append: the thread is woken, the caller goes on
    while len(synced) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    w.close()
    assert synced[1] is False


def test_interval_zero_fsyncs_on_every_append(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    with JournalWriter.create(tmp_path, fsync_interval_s=0) as w:
        calls.clear()
        for k in range(3):
            w.append_samples(block(k, 1))
        assert len(calls) == 3


# -- real crashes ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from labctl.records import SAMPLE_COLUMNS
    from labctl.store.journal import JournalWriter

    run_dir, rows, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    w = JournalWriter.create(run_dir, fsync_interval_s=0.2)
    k = 0
    while True:
        n = rows + (k * 7919) % rows  # uneven block sizes
        idx = np.arange(n)
        cols = {name: (idx + k).astype(dt) for name, dt in SAMPLE_COLUMNS.items()}
        cols["step_index"] = np.full(n, k, np.int32)
        cols["test_time_s"] = k * 1e6 + idx
        w.append_samples(cols)
        w.append_event({"type": "log", "block": k, "rows": n})
        if mode == "sync":
            w.sync()
        # Reported only after the append returned: from here on it must survive a SIGKILL.
        sys.stdout.write(f"{k} {n}\\n")
        sys.stdout.flush()
        k += 1
""")


@pytest.mark.parametrize("mode", ["sync", "nosync"])
def test_sigkill_at_random_moments_keeps_every_reported_block_once(tmp_path, mode):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rnd = random.Random(2026 + len(mode))
    for trial in range(3):
        run = tmp_path / f"run{trial}"
        run.mkdir()
        proc = subprocess.Popen([sys.executable, str(script), str(run), "20000", mode],
                                stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        first = proc.stdout.readline()  # the child is writing
        time.sleep(rnd.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        # Read the rest through the same text stream: readline() may already hold more
        # lines in its buffer, which communicate(timeout=...) would skip (it reads the fd).
        rest = proc.stdout.read()
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        reported = [tuple(map(int, line.split())) for line in (first + rest).splitlines()]
        assert [k for k, _ in reported] == list(range(len(reported)))

        data = read_journal(run)
        step = data.samples["step_index"]
        present = np.unique(step)
        assert np.array_equal(present, np.arange(len(present)))  # whole blocks, in order
        assert len(present) >= len(reported)
        for k, n in reported:  # every reported block, exactly once, with its own rows
            mine = data.samples["test_time_s"][step == k]
            np.testing.assert_array_equal(mine, k * 1e6 + np.arange(n))
        assert [e["block"] for e in data.events] in (list(range(len(present))),
                                                     list(range(len(present) - 1)))
        with JournalWriter.open_for_append(run) as w:
            w.append_event({"type": "resume", "session": 2})
        again = read_journal(run)
        assert not again.torn_tail and again.events[-1]["type"] == "resume"
        assert len(again.samples["test_time_s"]) == len(step)


def test_the_fsync_thread_hands_every_few_megabytes_to_the_disk_early(tmp_path, monkeypatch):
    """Early writeback (no extra fsync) covers the file in order, and changes no byte."""
    monkeypatch.setattr(jmod, "WRITEBACK_BYTES", 20_000)
    ranges: list[tuple[int, int]] = []
    real = jmod.start_writeback

    def spy(fd, offset, length):
        ranges.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(jmod, "start_writeback", spy)
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    blocks = [block(k, 300) for k in range(12)]  # ~25 kB each
    w = JournalWriter.create(tmp_path, fsync_interval_s=3600.0)  # no fsync falls due
    fsyncs.clear()
    for b in blocks:
        w.append_samples(b)
        time.sleep(0.01)  # let the thread run
    for _ in range(100):  # the thread runs on its own: wait for it to catch up
        if ranges and sum(n for _, n in ranges) >= w.size - 40_000:
            break
        time.sleep(0.01)
    w.close()
    assert len(ranges) >= 3
    starts = [o for o, _ in ranges]
    assert starts[0] == 0
    assert all(o + n == nxt for (o, n), nxt in zip(ranges[:-1], starts[1:], strict=True))
    assert len(fsyncs) == 1  # only close's: early writeback is no fsync
    want = {name: np.concatenate([b[name] for b in blocks]) for name in SAMPLE_COLUMNS}
    assert_same(read_journal(tmp_path).samples, want)
