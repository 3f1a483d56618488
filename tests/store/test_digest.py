"""The run's digest (digest.json): what `labctl show` reads instead of the Parquet tables.

Checked against the tables themselves (read with pyarrow and pandas, as an analyst reads
them) and against the synthetic run's own plan; a digest that does not belong to the
current tables (stale mark, damaged file) must never be used.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner

from labctl.cli import main
from labctl.store.digest import DIGEST_NAME, read_digest
from labctl.store.doctor import check_run
from labctl.store.journal import JournalWriter
from labctl.store.run import open_run
from labctl.store.run_summary import summarize
from labctl.store.rundir import RunDir, effective_status
from labctl.store.tables import finalize
from tests.store.store_synth import write_run


def _same(a: list, b: list) -> bool:
    """Equal lists, NaN equal to NaN."""
    return len(a) == len(b) and all(
        (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        or x == y for x, y in zip(a, b, strict=True))


def _parquet_steps(path) -> dict[str, list]:
    table = pq.read_table(path / "steps.parquet")
    return {n: table.column(n).to_pylist() for n in table.column_names}


def _summary_from_tables(run_dir) -> dict:
    meta = RunDir.open(run_dir).meta
    meta = dict(meta, status=effective_status(meta))  # what open_run reports
    n = pq.ParquetFile(run_dir / "timeseries.parquet").metadata.num_rows
    return summarize(meta, pd.read_parquet(run_dir / "steps.parquet"),
                     pd.read_parquet(run_dir / "cycles.parquet"), n)


def test_the_digest_holds_what_the_tables_hold(tmp_path):
    run = write_run(tmp_path, "done", np.random.default_rng(7), n_cycles=3)
    finalize(run.path)
    assert (run.path / DIGEST_NAME).is_file()
    r = open_run(run.path)
    assert r._digest is not None  # really read from the digest
    steps = r.columns("steps")
    truth = _parquet_steps(run.path)
    assert list(steps) == list(truth)
    for name in truth:
        assert _same(steps[name], truth[name]), name
    assert steps["step_index"] == [s.index for s in run.plan]
    summary = r.summary()
    assert summary == _summary_from_tables(run.path)
    assert summary["n_samples"] == len(run.samples["test_time_s"])
    assert summary["n_steps"] == len(run.plan)


def test_a_digest_is_what_show_reads(tmp_path):
    """A changed value in a current digest shows up: the tables were not read."""
    run = write_run(tmp_path, "done", np.random.default_rng(8), n_cycles=2)
    finalize(run.path)
    path = run.path / DIGEST_NAME
    data = json.loads(path.read_text())
    data["summary"]["n_samples"] = 123456789
    path.write_text(json.dumps(data))
    assert open_run(run.path).summary()["n_samples"] == 123456789


def test_a_digest_of_other_tables_is_ignored(tmp_path):
    run = write_run(tmp_path, "done", np.random.default_rng(9), n_cycles=2)
    finalize(run.path)
    path = run.path / DIGEST_NAME
    data = json.loads(path.read_text())
    data["tables_journal"]["file_bytes"] += 1  # written for another journal state
    data["summary"]["n_samples"] = 123456789
    path.write_text(json.dumps(data))
    r = open_run(run.path)
    assert r._digest is None
    assert r.summary() == _summary_from_tables(run.path)
    assert r.summary()["n_samples"] == len(run.samples["test_time_s"])


def test_a_damaged_digest_is_ignored_and_show_still_answers(tmp_path):
    run = write_run(tmp_path, "done", np.random.default_rng(10), n_cycles=2)
    finalize(run.path)
    runner = CliRunner()
    before = runner.invoke(main, ["show", str(run.path), "--json"])
    assert before.exit_code == 0, before.output
    path = run.path / DIGEST_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # torn
    assert read_digest(run.path, RunDir.open(run.path).meta["tables_journal"]) is None
    after = runner.invoke(main, ["show", str(run.path), "--json"])
    assert after.exit_code == 0, after.output
    path.unlink()
    gone = runner.invoke(main, ["show", str(run.path), "--json"])
    assert gone.exit_code == 0, gone.output
    # From the digest, from the tables (torn digest, no digest): the same text.
    assert before.output == after.output == gone.output


def test_a_journal_that_grew_makes_the_digest_stale_until_the_next_finalize(tmp_path):
    run = write_run(tmp_path, "crashed", np.random.default_rng(11), crash_in_step=4)
    check_run(run.path, repair=True)  # doctor builds the tables, and with them the digest
    meta = RunDir.open(run.path).meta
    first = read_digest(run.path, meta["tables_journal"])
    assert first is not None and first["summary"]["n_samples"] == len(run.samples["test_time_s"])
    w = JournalWriter.open_for_append(run.path)  # as a resumed session goes on writing
    w.append_event({"type": "state", "test_time_s": 1e9, "instruments": {}})
    w.close()
    r = open_run(run.path)
    assert not r.tables_current and r._digest is None  # the digest is not trusted now
    finalize(run.path)  # the next finalize writes a digest for the journal as it is now
    mark = RunDir.open(run.path).meta["tables_journal"]
    assert read_digest(run.path, mark) is not None
    assert open_run(run.path).summary() == _summary_from_tables(run.path)


def test_a_digest_written_by_another_labctl_is_ignored(tmp_path):
    """Its summary or steps columns may not be what this labctl makes of the tables."""
    run = write_run(tmp_path, "done", np.random.default_rng(12), n_cycles=2)
    finalize(run.path)
    path = run.path / DIGEST_NAME
    data = json.loads(path.read_text())
    data["labctl_version"] = "0.0.1"
    data["summary"]["n_samples"] = 123456789
    path.write_text(json.dumps(data))
    assert open_run(run.path).summary() == _summary_from_tables(run.path)


def test_the_digest_made_in_two_parts_reads_back_as_the_whole_object(tmp_path):
    """finalize makes the steps' text while the writer still works (by orjson where its
    text reads back as json's) and splices the rest in front: the file must read back as
    json.dumps of the whole object does, NaN, tiny floats, big integers and all."""
    from labctl import __version__
    from labctl.store.digest import DIGEST_VERSION, steps_text, write_digest

    mark = {"bytes": 1234, "last_record": [1200, 34]}
    summary = {"status": "completed", "n_samples": 7, "mean_temperature_c": float("nan"),
               "note": "a \"quoted\" ünïcode text"}
    plain = {"step_index": np.array([1, 2], dtype=np.int32),
             "end_value": np.array([3.2, 1e-05]),
             "n_samples": np.array([2**62, 0], dtype=np.int64),
             "kind": ["discharge", "réstée"],
             "text": np.array(["Rest for 1 h", "Charge at 1C"], dtype=object)}
    cases = {"orjson": plain,  # its text differs from json's (0.00001, raw UTF-8)
             "nan": dict(plain, end_value=np.array([3.2, float("nan")])),
             "null in a text": dict(plain, text=np.array(["Rest until null", "x"], dtype=object)),
             "beyond 64 bits": dict(plain, n_samples=[2**70, 0])}
    for name, steps in cases.items():
        whole = json.dumps({"digest_version": DIGEST_VERSION, "labctl_version": __version__,
                            "tables_journal": mark, "summary": summary,
                            "steps": {k: (v.tolist() if hasattr(v, "tolist") else v)
                                      for k, v in steps.items()}},
                           allow_nan=True, separators=(",", ":"))
        for made_before in (None, steps_text(steps)):
            write_digest(tmp_path, mark, summary, steps, made_before)
            text = (tmp_path / DIGEST_NAME).read_text(encoding="utf-8")
            # NaN != NaN: compare the texts json writes of what each reads back as.
            assert json.dumps(json.loads(text)) == json.dumps(json.loads(whole)), name
            if name == "orjson":
                assert "0.00001" in text and "réstée" in text  # orjson wrote the steps
            else:  # json wrote them: the whole file is what one json.dumps writes
                assert text == whole, name
