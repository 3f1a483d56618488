"""A run started in a long-lived process (a notebook, a test session) encodes its Parquet
tables in that process's shared writer (store/shared_writer.py): the same files a thread
of the process makes, pyarrow kept out of the run's process, one child for many runs, a
new one after it died, none left once the process has ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from labctl.engine.session import prepare, start_run
from labctl.store import shared_writer
from labctl.store.journal import read_journal

REPO = Path(__file__).resolve().parents[2]
STATION = REPO / "instruments" / "sim.yaml"
# ~84 k samples at 1 s: two row groups, the second partly filled.
PROCEDURE = """\
name: shared-writer-check
log: every 1 s
steps:
  - repeat: 10
    steps:
      - Discharge at 1C until 3.2 V
      - Rest for 10 minutes
      - Charge at 1C until 4.1 V
      - Hold at 4.1 V until C/20
"""

# Runs in a process of its own: which modules a run imports is the point.
RUNS_SCRIPT = """\
import json, os, signal, sys
from pathlib import Path
from labctl.engine.session import prepare, start_run
from labctl.store import shared_writer, table_writer

if os.environ.get("KILL_WRITER_AT_FIRST_READ"):  # the writer dies before its first row group
    real = table_writer.TableWriter.read_journal
    killed = []

    def read_journal(self, end):
        if not killed:
            killed.append(self.pid)
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()
        return real(self, end)

    table_writer.TableWriter.read_journal = read_journal

proc, station, results, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if os.environ.get("CHDIR_TO"):  # the working folder from now on (this process has imported)
    os.chdir(os.environ["CHDIR_TO"])
runs = []
for _ in range(n):
    prep = prepare(Path(proc), station_path=Path(station), cell_ref="nmc-1p95ah")
    outcome = start_run(prep, results_root=Path(results))
    writer = shared_writer.running_writer()
    runs.append({"path": str(outcome.path), "status": outcome.status,
                 "pid": writer.pid if writer is not None else None})
    if os.environ.get("KILL_WRITER_BETWEEN_RUNS") and writer is not None:
        os.kill(writer.pid, signal.SIGKILL)
        writer.process.wait()
print(json.dumps({"runs": runs, "pyarrow": "pyarrow" in sys.modules}))
"""


def _runs(tmp_path: Path, n: int, **env: str) -> dict:
    proc = tmp_path / "check.yaml"
    proc.write_text(PROCEDURE)
    out = subprocess.run(
        [sys.executable, "-c", RUNS_SCRIPT, str(proc), str(STATION), str(tmp_path / "results"),
         str(n)], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["status"] for r in report["runs"]] == ["completed"] * n
    return report


def _assert_tables_hold_the_journal(run: Path, rebuilt: bool = False) -> None:
    """The timeseries is the journal's samples, row for row (the journal is the record),
    and no table was rebuilt from it at the end (unless `rebuilt`)."""
    journal = read_journal(run)
    table = pq.read_table(run / "timeseries.parquet")
    assert table.num_rows == len(journal.samples["test_time_s"]) > 65_536
    for name, column in journal.samples.items():
        assert np.array_equal(table[name].to_numpy(), column, equal_nan=True), name
    steps = pq.read_table(run / "steps.parquet")
    assert steps.num_rows == 40
    assert int(pq.read_table(run / "cycles.parquet").num_rows) == 10
    assert ("timeseries rebuilt from the journal" in (run / "log.txt").read_text()) is rebuilt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_runs_of_one_process_share_one_writer_and_never_import_pyarrow(tmp_path):
    report = _runs(tmp_path, 2)
    assert report["pyarrow"] is False, "the runs' own process imported pyarrow"
    pids = {r["pid"] for r in report["runs"]}
    assert len(pids) == 1 and None not in pids, report
    for r in report["runs"]:
        _assert_tables_hold_the_journal(Path(r["path"]))
    # The process waited for its writer at exit: nothing of it is left, not even a zombie.
    assert not Path(f"/proc/{pids.pop()}").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_a_writer_that_died_between_runs_is_started_again(tmp_path):
    report = _runs(tmp_path, 2, KILL_WRITER_BETWEEN_RUNS="1")
    first, second = report["runs"]
    assert first["pid"] != second["pid"] and second["pid"] is not None
    for r in report["runs"]:
        _assert_tables_hold_the_journal(Path(r["path"]))


def test_labctl_table_writer_thread_keeps_the_tables_on_a_thread(tmp_path):
    report = _runs(tmp_path, 1, LABCTL_TABLE_WRITER="thread")
    assert report["runs"][0]["pid"] is None
    assert report["pyarrow"] is True  # the thread that encoded the tables imported it
    _assert_tables_hold_the_journal(Path(report["runs"][0]["path"]))


def test_without_a_writer_process_the_run_encodes_on_a_thread(tmp_path, monkeypatch):
    """No interpreter could be started (a sandbox, an embedded Python): the run goes on,
    and after MAX_STARTS attempts the process stops trying."""
    attempts = []

    def no_process(rows: int):
        attempts.append(rows)
        return None

    monkeypatch.setattr(shared_writer, "spawn_writer", no_process)
    monkeypatch.setattr(shared_writer, "_writer", None)
    monkeypatch.setattr(shared_writer, "_starts", 0)
    proc = tmp_path / "check.yaml"
    proc.write_text(PROCEDURE)
    for k in range(shared_writer.MAX_STARTS + 2):
        prep = prepare(proc, station_path=STATION, cell_ref="nmc-1p95ah")
        outcome = start_run(prep, results_root=tmp_path / f"results{k}")
        assert outcome.status == "completed"
    assert len(attempts) == shared_writer.MAX_STARTS
    _assert_tables_hold_the_journal(outcome.path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_a_writer_that_dies_during_a_run_leaves_the_tables_to_the_journal(tmp_path):
    report = _runs(tmp_path, 2, KILL_WRITER_AT_FIRST_READ="1")
    first, second = report["runs"]
    _assert_tables_hold_the_journal(Path(first["path"]), rebuilt=True)
    _assert_tables_hold_the_journal(Path(second["path"]))  # by a new writer
    assert second["pid"] not in (None, first["pid"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_the_writer_imports_nothing_from_the_working_folder(tmp_path):
    """`python -c` puts the working folder first on sys.path: a pickle.py there would
    run in the writer (which imports pickle) if it were started without -P."""
    folder = tmp_path / "work"
    folder.mkdir()
    marker = tmp_path / "ran.txt"
    (folder / "pickle.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                      "raise ImportError('not the real pickle')\n")
    report = _runs(tmp_path, 1, CHDIR_TO=str(folder))
    assert not marker.exists()
    _assert_tables_hold_the_journal(Path(report["runs"][0]["path"]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_an_abandoned_run_gives_the_writer_back_only_after_its_file(tmp_path):
    """Runs of one process share the writer: a run that gave it back first and then
    abandoned "its" file would close the next run's."""
    from labctl.store.live_tables import LiveTables
    from labctl.store.table_writer import row_group_rows

    writer = shared_writer.spawn_writer(row_group_rows())
    assert writer is not None
    held_at_abandon = []
    real = writer.abandon_file

    def abandon_file() -> None:
        held_at_abandon.append(writer._taken)
        real()

    writer.abandon_file = abandon_file
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            live = LiveTables(tmp_path / name, writer=writer)
            assert live.remote is writer  # b could take it: a gave it back
            live.abandon()
            live.abandon()  # twice: still one give-back
        assert held_at_abandon == [True, True]
        assert writer.take(row_group_rows())
    finally:
        writer.close()


FORK_SCRIPT = """\
import os, sys
from pathlib import Path
from labctl.engine.session import prepare, start_run
from labctl.store import shared_writer

prep = prepare(Path(sys.argv[1]), station_path=Path(sys.argv[2]), cell_ref="nmc-1p95ah")
start_run(prep, results_root=Path(sys.argv[3]))
writer = shared_writer.running_writer()
pid, fds = os.fork(), (writer._to, writer._from)
if pid == 0:  # the child: no writer, and the parent's pipe ends are closed
    ok = shared_writer.running_writer() is None
    for fd in fds:
        try:
            os.fstat(fd)
            ok = False
        except OSError:
            pass
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, "the forked child kept the parent's writer"
outcome = start_run(prep, results_root=Path(sys.argv[3]))  # the parent's writer still works
assert shared_writer.running_writer() is writer
print(outcome.path)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: POSIX")
def test_a_forked_process_lets_go_of_the_parent_s_writer(tmp_path):
    proc = tmp_path / "check.yaml"
    proc.write_text(PROCEDURE)
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(proc), str(STATION),
                          str(tmp_path / "results")], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    _assert_tables_hold_the_journal(Path(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_a_run_whose_timeseries_cannot_be_renamed_abandons_nothing_of_another(tmp_path,
                                                                               monkeypatch):
    """finalize gives up after the writer closed the file and was given back (the rename
    failed): the writer's file then belongs to whichever run took it next."""
    import labctl.store.finalize as finalize_module
    from labctl.errors import StorageError
    from labctl.store.table_writer import row_group_rows

    writer = shared_writer.spawn_writer(row_group_rows())
    assert writer is not None
    abandoned_while_free = []
    real_abandon = writer.abandon_file

    def abandon_file() -> None:
        abandoned_while_free.append(not writer._taken)
        real_abandon()

    writer.abandon_file = abandon_file
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "timeseries.parquet":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(finalize_module.os, "replace", replace)
    proc = tmp_path / "check.yaml"
    proc.write_text(PROCEDURE)
    prep = prepare(proc, station_path=STATION, cell_ref="nmc-1p95ah")
    try:
        with pytest.raises(StorageError, match="could not be completed"):
            start_run(prep, results_root=tmp_path / "results", table_writer=writer)
        assert abandoned_while_free == []  # nothing abandoned once the writer was free
        assert writer.take(row_group_rows())  # and it was given back
    finally:
        writer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pass_fds: POSIX")
def test_a_closed_writer_is_reaped_through_its_popen():
    """Else Popen never learns of the exit: "subprocess N is still running" warnings at
    the interpreter's end, and a kill after the timeout that could hit a reused pid."""
    import time

    from labctl.store.table_writer import row_group_rows

    writer = shared_writer.spawn_writer(row_group_rows())
    assert writer is not None
    writer.close()
    deadline = time.monotonic() + 10
    while writer.process.returncode is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the reaper thread's wait() sets it; nothing here polls
    assert writer.process.returncode == 0
