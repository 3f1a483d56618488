"""Packed sample blocks (journal format 2): a column that holds one value through a block
is stored once, the engine's unix time as an offset, and every block reads back bit for
bit; the sizes are checked against the format's closed form, not against the writer."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store import journal_reader
from labctl.store.journal import JOURNAL_NAME, JournalWriter, read_journal, record_bytes
from tests.support import REPO

NAMES = list(SAMPLE_COLUMNS)
HEADER = 13  # magic u32, type u8, length u32, crc u32


def records(raw: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of each record, read by the format's own description."""
    out, pos = [], 0
    while pos < len(raw):
        magic, kind, length, crc = struct.unpack_from("<IBII", raw, pos)
        payload = raw[pos + HEADER:pos + HEADER + length]
        assert magic == 0x4C424A31 and zlib.crc32(payload) == crc
        out.append((kind, payload))
        pos += HEADER + length
    return out


def a_block(n: int = 1000) -> tuple[dict[str, np.ndarray], float]:
    rng = np.random.default_rng(7)
    t = 3600.0 + np.arange(n) * 0.999
    origin = 1_765_000_000.123
    cols = {
        "test_time_s": t,
        "unix_time_s": origin + t,
        "step_index": np.full(n, 12, np.int32),
        "cycle_index": np.full(n, 3, np.int32),
        "voltage_v": 3.7 + rng.normal(0, 1e-3, n),
        "current_a": np.zeros(n),  # a rest: one value
        "temperature_c": np.full(n, np.nan),  # no thermocouple: NaN throughout is one value
        "charge_capacity_ah": np.full(n, 1.25),
        "discharge_capacity_ah": np.full(n, 0.5),
        "charge_energy_wh": np.zeros(n),
        "discharge_energy_wh": np.full(n, 1.75),
    }
    cols["charge_energy_wh"][n // 2] = -0.0  # equal to 0.0, but not the same bytes
    cols["discharge_energy_wh"][n // 3] = np.nextafter(1.75, 2.0)  # one row differs
    return cols, origin


def assert_bitwise(got: dict, want: dict) -> None:
    for name, dt in SAMPLE_COLUMNS.items():
        assert got[name].dtype == dt, name
        assert got[name].tobytes() == np.asarray(want[name], dt).tobytes(), name


def test_constant_columns_take_one_slot_and_read_back_bit_for_bit(tmp_path):
    cols, origin = a_block()
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
    raw = (tmp_path / JOURNAL_NAME).read_bytes()
    (_, header), (kind, payload) = records(raw)
    assert json.loads(header)["format_version"] == 2 and kind == 3
    n, constant, shifted = struct.unpack_from("<III", payload)
    stored_once = {"step_index", "cycle_index", "current_a", "temperature_c",
                   "charge_capacity_ah", "discharge_capacity_ah"}
    assert n == 1000
    assert {NAMES[k] for k in range(len(NAMES)) if constant >> k & 1} == stored_once
    assert {NAMES[k] for k in range(len(NAMES)) if shifted >> k & 1} == {"unix_time_s"}
    # Closed form: 12-byte head, an 8-byte slot per packed column, whole columns for the
    # rest (test time, voltage, and the two energy columns that are not one value).
    assert len(payload) == 12 + 8 * 7 + 4 * 8 * n
    assert len(raw) - HEADER - len(header) == HEADER + len(payload) == record_bytes(cols, origin)
    assert_bitwise(read_journal(tmp_path).samples, cols)


def test_a_block_without_the_engines_hints_packs_only_what_it_checked(tmp_path):
    cols, _ = a_block(50)
    cols["unix_time_s"] = cols["unix_time_s"].copy()
    cols["unix_time_s"][7] += 1e-6  # not the test time plus one number: stored whole
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols)
    (_, _), (kind, payload) = records((tmp_path / JOURNAL_NAME).read_bytes())
    _, constant, shifted = struct.unpack_from("<III", payload)
    assert shifted == 0 and not constant >> NAMES.index("unix_time_s") & 1
    assert constant >> NAMES.index("step_index") & 1  # checked, and one value
    assert_bitwise(read_journal(tmp_path).samples, cols)


def test_one_row_blocks_and_split_blocks_read_back(tmp_path, monkeypatch):
    from labctl.store import journal as jmod

    monkeypatch.setattr(jmod, "_MAX_ROWS_PER_RECORD", 64)
    cols, origin = a_block(200)  # four records of 64, 64, 64 and 8 rows
    one, _ = a_block(1)
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(one, unix_origin_s=origin)
        w.append_samples(cols, unix_origin_s=origin)
    got = read_journal(tmp_path).samples
    want = {k: np.concatenate([one[k], cols[k]]) for k in NAMES}
    assert_bitwise(got, want)
    written = records((tmp_path / JOURNAL_NAME).read_bytes())
    # A one-row block gains nothing from packing (a slot per column is no smaller than
    # the column): it is a SAMPLES record, 4-byte count and the 80-byte row.
    assert [k for k, _ in written] == [1, 2, 3, 3, 3, 3]
    assert len(written[1][1]) == 4 + 80


def test_a_block_packing_would_not_shrink_is_written_as_samples(tmp_path):
    """Two rows of which only the indices are one value: the slots and the 12-byte head
    cost more than they save (a real-time run hands over blocks this small)."""
    cols, origin = a_block(2)
    for name in ("voltage_v", "current_a", "temperature_c", "charge_capacity_ah",
                 "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh"):
        cols[name] = np.array([1.0, 2.0])
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
    (_, _), (kind, payload) = records((tmp_path / JOURNAL_NAME).read_bytes())
    # packed: 12 + 3 slots of 8 + 8 columns of 16 = 164 bytes; as SAMPLES 4 + 2 * 80 = 164
    assert kind == 2 and len(payload) == 164
    assert record_bytes(cols, origin) == HEADER + 164
    assert_bitwise(read_journal(tmp_path).samples, cols)


def test_a_packed_record_claiming_more_rows_than_a_record_holds_is_skipped(tmp_path):
    """Its size does not bound a packed record's row count: a reader must not believe
    2**32 - 1 rows from 100 bytes (a crafted or damaged file)."""
    cols, origin = a_block(20)
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
    head = (tmp_path / JOURNAL_NAME).read_bytes()
    every = (1 << len(NAMES)) - 1
    payload = struct.pack("<III", 2**32 - 1, every, 0) + bytes(8 * len(NAMES))
    bomb = struct.pack("<IBII", 0x4C424A31, 3, len(payload), zlib.crc32(payload)) + payload
    (tmp_path / JOURNAL_NAME).write_bytes(head + bomb)
    reader = journal_reader.JournalReader(tmp_path / JOURNAL_NAME)
    assert [n for kind, _, n in reader.records() if kind == 2] == [20]
    assert "sample block of a wrong size" in reader.problems[0]
    assert_bitwise(read_journal(tmp_path).samples, cols)


def _format_1_journal(folder, cols) -> None:
    """A journal as a labctl that writes format 1 leaves it: its header, SAMPLES records."""
    with JournalWriter.create(folder) as w:
        w.packs = False
        w.append_samples(cols)
    raw = bytearray((folder / JOURNAL_NAME).read_bytes())
    (_, header), _ = records(bytes(raw))
    old = json.dumps({**json.loads(header), "format_version": 1}, separators=(",", ":")).encode()
    assert len(old) == len(header)
    raw[HEADER:HEADER + len(old)] = old
    struct.pack_into("<I", raw, 9, zlib.crc32(old))
    (folder / JOURNAL_NAME).write_bytes(bytes(raw))


def test_a_format_1_journal_is_continued_in_format_1(tmp_path):
    """A run begun by a labctl that reads only format 1, resumed by this one: its new
    blocks stay SAMPLES records, which that labctl can still read."""
    cols, origin = a_block(30)
    _format_1_journal(tmp_path, cols)
    with JournalWriter.open_for_append(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
    assert [k for k, _ in records((tmp_path / JOURNAL_NAME).read_bytes())] == [1, 2, 2]
    got = read_journal(tmp_path).samples
    assert_bitwise(got, {k: np.concatenate([cols[k], cols[k]]) for k in NAMES})


def test_a_format_1_journal_repaired_stays_in_format_1(tmp_path):
    """`labctl doctor --repair` rewrites a damaged journal: one begun in format 1 stays
    readable by the labctl that began it."""
    from labctl.store.journal import rewrite_journal

    cols, _ = a_block(30)
    _format_1_journal(tmp_path, cols)
    raw = bytearray((tmp_path / JOURNAL_NAME).read_bytes())
    (tmp_path / JOURNAL_NAME).write_bytes(bytes(raw) + b"\x00" * 40 + bytes(raw[-200:]))
    rewrite_journal(tmp_path)
    (_, header), *rest = records((tmp_path / JOURNAL_NAME).read_bytes())
    assert json.loads(header)["format_version"] == 1 and [k for k, _ in rest] == [2]
    assert_bitwise(read_journal(tmp_path).samples, cols)


def test_a_labctl_that_reads_only_format_1_refuses_a_packed_journal(tmp_path, monkeypatch):
    cols, origin = a_block(10)
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
    monkeypatch.setattr(journal_reader, "FORMAT_VERSION", 1)
    with pytest.raises(LabctlError, match="journal format 2 is newer than this labctl reads"):
        read_journal(tmp_path)


def test_a_packed_record_whose_size_does_not_fit_its_masks_is_skipped(tmp_path):
    cols, origin = a_block(20)
    with JournalWriter.create(tmp_path) as w:
        w.append_samples(cols, unix_origin_s=origin)
        w.append_samples(cols, unix_origin_s=origin)
    raw = bytearray((tmp_path / JOURNAL_NAME).read_bytes())
    (_, header), (_, first), _ = records(bytes(raw))
    at = HEADER + len(header)
    bad = bytearray(first)
    struct.pack_into("<I", bad, 4, struct.unpack_from("<I", bad, 4)[0] & ~(1 << 2))
    struct.pack_into("<I", raw, at + 9, zlib.crc32(bytes(bad)))  # a valid CRC, wrong size
    raw[at + HEADER:at + HEADER + len(bad)] = bad
    (tmp_path / JOURNAL_NAME).write_bytes(bytes(raw))
    reader = journal_reader.JournalReader(tmp_path / JOURNAL_NAME)
    blocks = [n for kind, _, n in reader.records() if kind == 2]
    assert blocks == [20] and "sample block of a wrong size" in reader.problems[0]
    assert_bitwise(read_journal(tmp_path).samples, cols)


def test_a_simulated_runs_journal_is_its_samples_packed(tmp_path):
    """A real run: the journal reads back as the Parquet timeseries, and takes the bytes
    the format's closed form gives for the columns that change within each step."""
    from labctl.engine.session import prepare, start_run
    from labctl.store.run import open_run

    proc = tmp_path / "p.yaml"
    proc.write_text("name: p\nlog: every 2 s\nsteps:\n  - Discharge at 1C for 20 minutes\n"
                    "  - Rest for 10 minutes\n  - Charge at 1C for 10 minutes\n")
    prep = prepare(proc, station_path=REPO / "instruments" / "sim.yaml", cell_ref="nmc-1p95ah")
    outcome = start_run(prep, results_root=tmp_path / "r")
    run = open_run(outcome.path)
    table = run.timeseries
    data = read_journal(outcome.path)
    for name in NAMES:
        assert np.array_equal(table[name].to_numpy(), data.samples[name], equal_nan=True), name
    expected = 0
    for _, rows in table.groupby("step_index"):
        varying = [name for name in NAMES if name != "unix_time_s"
                   and rows[name].nunique(dropna=False) > 1]
        expected += HEADER + 12 + 8 * (len(NAMES) - len(varying)) + 8 * len(varying) * len(rows)
    raw = (outcome.path / JOURNAL_NAME).read_bytes()
    sample_bytes = sum(HEADER + len(p) for kind, p in records(raw) if kind == 3)
    assert sample_bytes == expected
    assert sample_bytes < 0.6 * len(table) * 80  # the unpacked rows' size
