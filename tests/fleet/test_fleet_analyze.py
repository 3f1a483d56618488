"""`labctl analyze cycling --all` on a Dask cluster: the same bytes as one run at a time."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from labctl.cli import main
from tests.fleet.conftest import CELLS


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/run.json"))


def _files(run_dir: Path, name: str = "cycling") -> dict[str, bytes]:
    folder = run_dir / "analysis" / name
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _serial_reference(store: Path) -> dict[str, dict[str, bytes]]:
    """Each run analysed by the single-run command, as a user types it."""
    runner = CliRunner()
    out = {}
    for run in _runs(store):
        res = runner.invoke(main, ["analyze", "cycling", str(run), "--json"])
        assert res.exit_code == 0, res.output
        out[run.name] = _files(run)
    return out


def _break(run: Path) -> None:
    """A run whose tables and journal are both unreadable."""
    (run / "timeseries.parquet").write_bytes(b"not parquet")
    (run / "journal.bin").write_bytes(b"\x00garbage")


def test_fleet_analysis_equals_the_serial_command_bit_for_bit(client, store_copy, tmp_path):
    serial_store = tmp_path / "serial"
    shutil.copytree(store_copy, serial_store)
    reference = _serial_reference(serial_store)
    shutil.copytree(_runs(store_copy)[0], store_copy / "zz-broken-run")
    meta = json.loads((store_copy / "zz-broken-run" / "run.json").read_text())
    meta["run_id"] = "zz-broken-run"
    (store_copy / "zz-broken-run" / "run.json").write_text(json.dumps(meta))
    _break(store_copy / "zz-broken-run")

    address = client.scheduler.address
    res = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--results", str(store_copy),
                                    "--scheduler", address, "--json"])
    assert res.exit_code == 1, res.output  # one run is broken: reported, the others done
    report = json.loads(res.stdout)
    assert report["runs"] == len(CELLS) + 1 and report["analysed"] == len(CELLS)
    assert [Path(f["run"]).name for f in report["failed"]] == ["zz-broken-run"]

    for run in _runs(store_copy):
        if run.name == "zz-broken-run":
            assert not (run / "analysis" / "cycling").exists()
            continue
        assert _files(run) == reference[run.name], run.name

    table = pd.read_parquet(store_copy / "fleet" / "cycling.parquet")
    assert len(table) == len(CELLS) + 1
    broken_row = table[table["run_id"] == "zz-broken-run"].iloc[0]
    assert not broken_row["ok"] and broken_row["error"]
    ok = table[table["ok"]]
    # Independent truth: the NMC cell (1.95 Ah) is the one that is not like the LFP lot.
    flagged = set(ok.loc[ok["outlier"], "cell_name"])
    assert flagged == {"NMC 1.95 Ah"}
    nmc = ok[ok["cell"] == "nmc-1p95ah"].iloc[0]
    assert "last_discharge_capacity_ah" in nmc["outlier_metrics"]
    assert (store_copy / "fleet" / "cycling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_cycle = pd.read_parquet(store_copy / "fleet" / "cycling-per-cycle.parquet")
    assert len(per_cycle) == 2 * len(CELLS)  # 2 cycles of every good run
    # The per-cycle retention equals each run's own stored cycles table.
    for run_id, rows in per_cycle.groupby("run_id"):
        own = pd.read_parquet(store_copy / run_id / "analysis" / "cycling" / "cycles.parquet")
        assert rows["retention"].tolist() == own["retention"].tolist()


def test_a_killed_worker_mid_analysis_gives_the_same_results(client, store_copy, tmp_path):
    from labctl.fleet.analyze import analyze_all

    serial_store = tmp_path / "serial"
    shutil.copytree(store_copy, serial_store)
    reference = _serial_reference(serial_store)
    killed: list[tuple[str, int, list]] = []

    def kill_a_busy_worker(done: int, total: int) -> None:
        if killed or done != 1:
            return
        busy = {addr: keys for addr, keys in client.processing().items() if keys}
        if not busy:
            return
        addr, keys = next(iter(busy.items()))
        pid = client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
        killed.append((addr, pid, list(keys)))

    outcome = analyze_all("cycling", results=store_copy, client=client,
                          progress=kill_a_busy_worker)
    assert killed, "no worker was busy after the first result: nothing was killed"
    _, pid, keys = killed[0]
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive and keys  # a worker died while it held at least one analysis
    assert not outcome.failed
    for run in _runs(store_copy):
        assert _files(run) == reference[run.name], run.name


def test_lot_compares_each_cell_with_its_own_kind(store_copy):
    """The store's NMC run is the odd one among LFP runs, but not within a lot per cell:
    the LFP runs of the fixture are alike and the NMC lot has one run."""
    res = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--results", str(store_copy),
                                    "--lot", "cell", "--workers", "0", "--no-plots", "--json"])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(store_copy / "fleet" / "cycling.parquet")
    assert not table["outlier"].any()
    assert set(table["lot"]) == set(CELLS)
    assert json.loads(res.stdout)["lot"] == ["cell"]
    bad = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--results", str(store_copy),
                                    "--lot", "colour", "--workers", "0"])
    assert bad.exit_code == 2 and "allowed: cell" in bad.output


def test_where_picks_runs_from_the_catalog(store_copy):
    res = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--results", str(store_copy),
                                    "--where", "cell == 'nmc-1p95ah'", "--workers", "0",
                                    "--no-plots", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["runs"] == 1 and report["analysed"] == 1
    analysed = [r for r in _runs(store_copy) if (r / "analysis" / "cycling").exists()]
    assert [json.loads((r / "run.json").read_text())["cell"]["name"] for r in analysed] == [
        "NMC 1.95 Ah"]
    bad = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--results", str(store_copy),
                                    "--where", "cel == 'x'", "--workers", "0"])
    assert bad.exit_code == 2 and "catalog columns" in bad.output
    both = CliRunner().invoke(main, ["analyze", "cycling", "RUN", "--all"])
    assert both.exit_code == 2
    alone = CliRunner().invoke(main, ["analyze", "cycling", "RUN", "--runs-per-task", "4"])
    assert alone.exit_code == 2 and "--runs-per-task: only with --all" in alone.output
    zero = CliRunner().invoke(main, ["analyze", "cycling", "--all", "--runs-per-task", "0"])
    assert zero.exit_code == 2 and "--runs-per-task" in zero.output


def test_several_runs_per_task_give_the_same_bytes_and_the_same_order(
        client, store_copy, tmp_path, monkeypatch):
    from labctl.fleet import analyze as fleet_analyze

    serial_store = tmp_path / "serial"
    shutil.copytree(store_copy, serial_store)
    reference = _serial_reference(serial_store)
    # 5 runs on 2 workers in tasks of 3, 1 and 1 runs (half of what is left per task).
    monkeypatch.setattr(fleet_analyze, "CHUNKS_PER_WORKER", 1)
    seen: list[int] = []
    outcome = fleet_analyze.analyze_all("cycling", results=store_copy, client=client,
                                        progress=lambda done, total: seen.append(done),
                                        runs_per_task=8)
    steps = sorted(b - a for a, b in zip([0, *seen[:-1]], seen, strict=True))
    assert steps == [1, 1, 3] and seen[-1] == 5  # one progress step per task, by runs done
    catalog, _ = fleet_analyze.select_runs(store_copy, None)
    assert [Path(r["run_path"]).name for r in outcome.results] == [
        Path(p).name for p in catalog["path"]]  # results in catalog order, whatever ran first
    assert not outcome.failed
    for run in _runs(store_copy):
        assert _files(run) == reference[run.name], run.name


def test_tasks_take_the_largest_runs_first_and_shrink_to_one_run():
    from labctl.fleet.analyze import largest_first, plan_chunks

    assert largest_first([10, 30, 20, 30], 4) == [1, 3, 2, 0]
    assert largest_first(None, 3) == [0, 1, 2]
    order = list(range(1000))
    assert plan_chunks(order, workers=2) == [[i] for i in order]  # default: a task per run
    chunks = plan_chunks(order, workers=2, runs_per_task=8)
    assert [i for c in chunks for i in c] == order  # every run once, in the given order
    sizes = [len(c) for c in chunks]
    assert max(sizes) == 8 and sizes[0] == 8
    assert sizes == sorted(sizes, reverse=True) and sizes[-8:] == [1] * 8
    assert len(chunks) < 1000 / 4  # far fewer tasks than runs
    assert [len(c) for c in plan_chunks(list(range(5)), workers=2, runs_per_task=8)] == [1] * 5


def _analyze_many_or_die(name, paths, options):
    """In a worker: a run named poison-* kills the worker's process (like a segfault)."""
    from labctl.fleet.tasks import analyze_many

    if any(Path(p).name.startswith("poison") for p in paths):
        os._exit(1)
    return analyze_many(name, paths, options)


def test_a_run_that_kills_its_worker_fails_alone_not_its_whole_task(
        client, dask_cluster, store_copy, monkeypatch):
    from labctl.fleet import analyze as fleet_analyze

    shutil.copytree(_runs(store_copy)[0], store_copy / "poison-run")
    meta = json.loads((store_copy / "poison-run" / "run.json").read_text())
    meta["run_id"] = "poison-run"
    (store_copy / "poison-run" / "run.json").write_text(json.dumps(meta))
    monkeypatch.setattr(fleet_analyze, "analyze_many", _analyze_many_or_die)
    monkeypatch.setattr(fleet_analyze, "plan_chunks", lambda order, workers, most: [order])
    scheduler = dask_cluster[0].scheduler
    monkeypatch.setattr(scheduler, "allowed_failures", 0)  # the first death gives up
    # One task at a time per worker, so a dying worker takes no queued task with it.
    monkeypatch.setattr(scheduler, "WORKER_SATURATION", 1.0)
    outcome = fleet_analyze.analyze_all("cycling", results=store_copy, client=client,
                                        options={"no_plots": True})
    failed = {Path(r["run_path"]).name: r["error"] for r in outcome.failed}
    assert list(failed) == ["poison-run"] and "KilledWorker" in failed["poison-run"], failed
    assert len(outcome.results) == len(CELLS) + 1  # the 5 runs of its task were redone alone
    for run in _runs(store_copy):
        if run.name != "poison-run":
            assert (run / "analysis" / "cycling" / "summary.json").is_file(), run.name


def test_a_task_builds_its_analysis_holding_the_first_imports_lock(monkeypatch):
    # Several tasks start at once on a worker with several threads; the analysis packages
    # import their own modules in __init__, which two threads must not do at once.
    from labctl.fleet import tasks

    held = []

    def command(name):
        held.append(tasks.first_imports.locked())
        raise RuntimeError(f"no analysis {name} here")  # analyze_one reports it as a row

    monkeypatch.setattr(tasks, "analysis_command", command)
    row = tasks.analyze_one("cycle-life", "/nonexistent", {})
    assert held == [True]
    assert row["ok"] is False and not tasks.first_imports.locked()
