"""The Parquet tables of `labctl run` encoded in a child process (store/table_writer.py):
the same files as the in-process path, pyarrow never imported by the run's own process,
and the journal still the record when the child fails or is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from labctl.engine.session import prepare, start_run
from labctl.records import SAMPLE_COLUMNS
from labctl.store import summaries, table_writer

REPO = Path(__file__).resolve().parents[2]
STATION = REPO / "instruments" / "sim.yaml"
# ~150 k samples at 1 s: several row groups, the last one partly filled.
PROCEDURE = """\
name: writer-check
log: every 1 s
steps:
  - repeat: 18
    steps:
      - Discharge at 1C until 3.2 V
      - Rest for 10 minutes
      - Charge at 1C until 4.1 V
      - Hold at 4.1 V until C/20
      - Rest for 10 minutes
"""

# Runs `labctl run` in this child's own process (as the console script does) and then
# reports which modules the command imported.
CLI_SCRIPT = """\
import json, sys
from labctl.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print(json.dumps({"code": code, "pyarrow": "pyarrow" in sys.modules}), file=sys.stderr)
"""

KILL_CHILD_SCRIPT = """\
import os, signal, sys
from labctl.store import table_writer
real = table_writer.TableWriter.read_journal

def read_journal(self, end):
    os.kill(self.pid, signal.SIGKILL)  # the writer dies before its first row group
    os.waitpid(self.pid, 0)
    return real(self, end)

table_writer.TableWriter.read_journal = read_journal
from labctl.cli import main
main(sys.argv[1:])
"""

# The writer dies just after it was asked for steps.parquet and cycles.parquet.
KILL_AT_FRAMES_SCRIPT = """\
import os, signal, sys
from labctl.store import table_writer
real = table_writer.TableWriter.start_frames

def start_frames(self, frames):
    reply = real(self, frames)
    os.kill(self.pid, signal.SIGKILL)
    os.waitpid(self.pid, 0)
    return reply

table_writer.TableWriter.start_frames = start_frames
from labctl.cli import main
main(sys.argv[1:])
"""


def _cli(tmp_path: Path, script: str, results: Path) -> subprocess.CompletedProcess:
    proc = tmp_path / "writer-check.yaml"
    proc.write_text(PROCEDURE)
    return subprocess.run(
        [sys.executable, "-c", script, "run", str(proc), "--station", str(STATION), "--cell",
         "nmc-1p95ah", "--results", str(results), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300)


def _run_dir(tmp_path: Path, script: str) -> Path:
    """The run folder of a `labctl run` through `script` that exited 0."""
    out = _cli(tmp_path, script, tmp_path / "results")
    assert out.returncode == 0, out.stderr[-2000:]
    return Path(json.loads(out.stdout)["run_dir"])


def _reference_run(tmp_path: Path) -> Path:
    """The same procedure in this process: tables encoded on a thread (no writer)."""
    proc = tmp_path / "writer-check.yaml"
    proc.write_text(PROCEDURE)
    prep = prepare(proc, station_path=STATION, cell_ref="nmc-1p95ah")
    outcome = start_run(prep, results_root=tmp_path / "reference", table_writer=None)
    assert outcome.status == "completed"
    return outcome.path


def _assert_same_tables(run: Path, reference: Path) -> None:
    for name in ("timeseries", "steps", "cycles"):
        got, want = pq.read_table(run / f"{name}.parquet"), pq.read_table(reference /
                                                                          f"{name}.parquet")
        assert got.schema.equals(want.schema, check_metadata=False), name
        if name == "timeseries":  # the runs started at different wall-clock times
            np.testing.assert_allclose(
                np.diff(got["unix_time_s"].to_numpy()), np.diff(want["unix_time_s"].to_numpy()),
                rtol=0, atol=1e-6)
            got, want = got.drop(["unix_time_s"]), want.drop(["unix_time_s"])
        assert got.equals(want), f"{name}.parquet differs from the in-process run's"
    got, want = (json.loads((r / "digest.json").read_text()) for r in (run, reference))
    # As JSON text: NaN compares equal to NaN there, not in a list.
    assert json.dumps(got["summary"]) == json.dumps(want["summary"])
    assert json.dumps(got["steps"]) == json.dumps(want["steps"])
    ts = pq.ParquetFile(run / "timeseries.parquet")
    groups = -(-ts.metadata.num_rows // summaries.ROW_GROUP_ROWS)
    assert groups >= 2 and ts.metadata.num_row_groups == groups  # several row groups


def test_the_writer_splits_row_groups_where_the_live_tables_do():
    assert table_writer.ROW_GROUP_ROWS == summaries.ROW_GROUP_ROWS


def _journal_with(tmp_path: Path, blocks: list[dict]) -> tuple[Path, list[int]]:
    """A journal of these sample blocks with events between them; the byte offsets after
    each block."""
    from labctl.store.journal import JournalWriter

    w = JournalWriter.create(tmp_path, fsync_interval_s=0)
    ends = []
    for k, block in enumerate(blocks):
        w.append_event({"type": "step_start", "step_index": k + 1})
        w.append_samples(block)
        ends.append(w.size)
    w.close()
    return tmp_path / "journal.bin", ends


def _blocks(rng: np.random.Generator, sizes: list[int]) -> list[dict]:
    return [{name: (rng.integers(0, 1000, n) if dtype.kind == "i" else rng.normal(size=n)
                    ).astype(dtype) for name, dtype in SAMPLE_COLUMNS.items()} for n in sizes]


@pytest.mark.parametrize("chunk", [8 << 20, 100, 37])
def test_the_journal_is_read_back_block_by_block_as_written(tmp_path, monkeypatch, chunk):
    """Whatever the chunk it reads at a time: records cut by a chunk's end, records
    longer than a chunk."""
    monkeypatch.setattr(table_writer, "READ_CHUNK", chunk)
    blocks = _blocks(np.random.default_rng(5), [7, 300, 1, 4096, 55])
    blocks[1]["charge_capacity_ah"][:] = 0.5  # packed: comes as one scalar
    blocks[3]["step_index"][:] = 9
    path, ends = _journal_with(tmp_path, blocks)
    tail = table_writer._JournalTail(str(path))
    got = []
    for end in (ends[1], ends[1], ends[3], ends[4]):  # as far as the parent says, in steps
        got += [[np.broadcast_to(c, (rows,)).copy() for c in cols]
                for rows, cols in tail.samples_until(end)]
    tail.close()
    assert len(got) == len(blocks)
    for cols, block in zip(got, blocks, strict=True):
        for col, (name, want) in zip(cols, block.items(), strict=True):
            assert col.dtype == want.dtype and np.array_equal(col, want), name


def test_a_sample_block_that_reads_back_damaged_is_refused(tmp_path):
    blocks = _blocks(np.random.default_rng(6), [50, 60])
    path, ends = _journal_with(tmp_path, blocks)
    raw = bytearray(path.read_bytes())
    raw[ends[1] - 100] ^= 0x01  # one bit of the second block's last column
    path.write_bytes(bytes(raw))
    tail = table_writer._JournalTail(str(path))
    assert len(list(tail.samples_until(ends[0]))) == 1
    with pytest.raises(ValueError, match="does not read back as written"):
        list(tail.samples_until(ends[1]))
    with pytest.raises(ValueError, match="no whole record"):  # not at a record's end
        list(table_writer._JournalTail(str(path)).samples_until(ends[0] - 3))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_labctl_run_writes_the_same_tables_without_importing_pyarrow(tmp_path):
    out = _cli(tmp_path, CLI_SCRIPT, tmp_path / "results")
    report = json.loads(out.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, out.stderr[-2000:]
    assert report["pyarrow"] is False, "the run's own process imported pyarrow"
    run = Path(json.loads(out.stdout)["run_dir"])
    assert "rebuilt from the journal" not in (run / "log.txt").read_text()
    _assert_same_tables(run, _reference_run(tmp_path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_a_dead_writer_leaves_the_journal_to_build_the_tables(tmp_path):
    run = _run_dir(tmp_path, KILL_CHILD_SCRIPT)
    assert "timeseries rebuilt from the journal" in (run / "log.txt").read_text()
    assert not list(run.glob(".*.tmp"))  # the writer's half-made file is gone
    _assert_same_tables(run, _reference_run(tmp_path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_a_writer_gone_while_writing_steps_and_cycles_leaves_them_to_the_run(tmp_path):
    run = _run_dir(tmp_path, KILL_AT_FRAMES_SCRIPT)
    _assert_same_tables(run, _reference_run(tmp_path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_ctrl_c_of_the_whole_terminal_group_still_completes_the_tables(tmp_path):
    """A terminal's Ctrl-C reaches every process of its group, the writer too: it must
    live on to write the tables of the aborted run."""
    results = tmp_path / "results"
    env = dict(os.environ, LABCTL_SIM_SPEED="2000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "run", "procedures/cycling.yaml", "--results",
         str(results), "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(results.glob("*/journal.bin")):
            time.sleep(0.05)
        time.sleep(0.5)  # some samples in the journal
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    (run,) = results.glob("*/")
    assert json.loads((run / "run.json").read_text())["status"] == "aborted"
    assert "rebuilt from the journal" not in (run / "log.txt").read_text()
    samples = pq.read_table(run / "timeseries.parquet")
    steps = pq.read_table(run / "steps.parquet").to_pandas()
    assert samples.num_rows > 0
    assert samples.num_rows == int(steps["n_samples"].sum())


STREAMS_SCRIPT = """\
import os, sys, time
from labctl.store.table_writer import TableWriter
writer = TableWriter.fork()
assert writer is not None, "no fork"
mine = [os.readlink(f"/proc/self/fd/{fd}") for fd in (1, 2)]
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    theirs = [os.readlink(f"/proc/{writer.pid}/fd/{fd}") for fd in (1, 2)]
    if theirs != mine:
        break
    time.sleep(0.01)
writer.close()
print(theirs, mine, file=sys.stderr)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_the_writer_lets_go_of_the_commands_output(tmp_path):
    """A caller that reads `labctl run`'s output to its end must not wait for the writer."""
    out = subprocess.run([sys.executable, "-c", STREAMS_SCRIPT], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = out.stderr.strip().splitlines()[-1]
    assert theirs.startswith(f"['{os.devnull}', '{os.devnull}']"), theirs


class _InProcessWriter:
    """A TableWriter whose child's side runs in this process (no fork): the live tables'
    remote protocol, checked against a synthetic run's own samples. `lie` is added to the
    rows the writer says it read back."""

    def __init__(self, rows: int, lie: int = 0):
        self.server = table_writer._Server(-1, -1, rows)
        self.rows, self.lie = rows, lie

    def take(self, rows: int) -> bool:
        return rows == self.rows

    def release(self) -> None:
        pass

    def open_file(self, path, journal) -> None:
        self.server._open(str(path), str(journal))

    def read_journal(self, end: int) -> None:
        self.server._upto(end)

    def close_file(self) -> dict:
        done = self.server._close()
        return {**done, "rows": done["rows"] + self.lie}

    def abandon_file(self) -> None:
        self.server._abandon()

    def start_frames(self, frames):
        self.server._frames([(str(path), cols) for path, cols in frames])
        return lambda: None

    alive = True


def _remote_tapped(monkeypatch, rows: int, lie: int = 0) -> list:
    from labctl.store.journal import JournalWriter
    from labctl.store.live_tables import LiveTables

    made: list = []
    real = JournalWriter.create.__func__

    def create(cls, run_dir, *args, **kwargs):
        writer = real(cls, run_dir, *args, **kwargs)
        writer.tap = LiveTables(run_dir, writer=_InProcessWriter(rows, lie))
        made.append(writer.tap)
        return writer

    monkeypatch.setattr(JournalWriter, "create", classmethod(create))
    return made


@pytest.mark.parametrize("rows", [37, 1000, 1_000_000])
def test_the_writer_reads_back_exactly_the_runs_samples(tmp_path, monkeypatch, rows):
    from labctl.store import tables
    from tests.store.store_synth import write_run

    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", rows)
    taps = _remote_tapped(monkeypatch, rows)
    run = write_run(tmp_path, "remote", np.random.default_rng(23), n_cycles=3)
    assert taps[0].remote is not None  # the samples go through the writer's side
    tables.finalize(run.path, live=taps[0])
    log = run.path / "log.txt"
    assert not log.exists() or "rebuilt from the journal" not in log.read_text()
    ts = pq.read_table(run.path / "timeseries.parquet")
    for name in SAMPLE_COLUMNS:  # the samples the synthetic run was built from
        assert ts[name].to_numpy().tobytes() == run.samples[name].tobytes(), name
    meta = pq.ParquetFile(run.path / "timeseries.parquet").metadata
    sizes = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sum(sizes) == len(run.samples["test_time_s"])
    assert all(s == rows for s in sizes[:-1]) and 0 < sizes[-1] <= rows


def test_a_writer_that_read_back_other_samples_sends_finalize_to_the_journal(tmp_path,
                                                                             monkeypatch):
    from labctl.store import tables
    from tests.store.store_synth import write_run

    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", 500)
    taps = _remote_tapped(monkeypatch, 500, lie=1)
    run = write_run(tmp_path, "remote", np.random.default_rng(24), n_cycles=2)
    tables.finalize(run.path, live=taps[0])
    log = (run.path / "log.txt").read_text()
    assert "timeseries rebuilt from the journal" in log and "samples back from the journal" in log
    ts = pq.read_table(run.path / "timeseries.parquet")  # still every sample, from the journal
    assert ts["test_time_s"].to_numpy().tobytes() == run.samples["test_time_s"].tobytes()


INTERRUPTED_SCRIPT = """\
import sys, time
from labctl.store import table_writer
# Both forked first: a fork needs a process of one thread (close() starts a reaper).
writers = [table_writer.TableWriter.fork(), table_writer.TableWriter.fork()]
assert None not in writers, "no fork"
real_send, real_receive = table_writer._send, table_writer._receive

def cut_short(*args):
    raise KeyboardInterrupt  # a Ctrl-C in the middle of a request
for name, writer in zip(("_send", "_receive"), writers):
    setattr(table_writer, name, cut_short)
    try:
        writer.write_frames([])
    except KeyboardInterrupt:
        pass
    else:
        raise SystemExit("no KeyboardInterrupt")
    setattr(table_writer, "_send", real_send)
    setattr(table_writer, "_receive", real_receive)
    assert not writer._lock.locked(), name
    assert not writer.alive, name  # the pipe may be out of step: never used again
    start = time.monotonic()
    writer.close()
    print(name, round(time.monotonic() - start, 3), file=sys.stderr)
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer is forked on Linux")
def test_a_request_cut_short_by_ctrl_c_never_hangs_the_commands_exit():
    out = subprocess.run([sys.executable, "-c", INTERRUPTED_SCRIPT], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
