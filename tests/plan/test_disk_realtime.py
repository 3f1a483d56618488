"""The disk estimate of a run in real time: samples reach the journal a few at a time,
too few for packing to pay, so the plan counts a record per sample (its bound). Checked
against the journal a real-time run of the simulated bench writes."""

from __future__ import annotations

import struct

from labctl.engine.session import prepare, start_run
from labctl.plan import plan_prepared
from labctl.plan.bounds import REALTIME_JOURNAL_BYTES_PER_SAMPLE
from labctl.store.journal import JOURNAL_NAME
from tests.support import REPO


def _sample_record_bytes(raw: bytes) -> int:
    pos = total = 0
    while pos < len(raw):
        _, kind, length, _ = struct.unpack_from("<IBII", raw, pos)
        if kind in (2, 3):
            total += 13 + length
        pos += 13 + length
    return total


def test_a_real_time_runs_journal_is_within_its_plans_bound(tmp_path):
    station = tmp_path / "realtime.yaml"
    station.write_text((REPO / "instruments" / "sim.yaml").read_text()
                       .replace("clock: virtual", "clock: realtime"))
    proc = tmp_path / "p.yaml"
    proc.write_text("name: p\nlog: every 0.25 s\nsteps:\n  - Discharge at 1C for 2 seconds\n"
                    "  - Rest for 1 second\n")
    prep = prepare(proc, station_path=station, cell_ref="nmc-1p95ah")
    report = plan_prepared(prep)
    assert report.journal_bytes_per_sample == REALTIME_JOURNAL_BYTES_PER_SAMPLE
    outcome = start_run(prep, results_root=tmp_path / "results")
    assert outcome.status == "completed", outcome.reason
    n = outcome.summary["n_samples"]
    assert abs(n - report.n_samples) <= 2
    written = _sample_record_bytes((outcome.path / JOURNAL_NAME).read_bytes())
    # The bound holds, and is not loose: the simulated bench hands over half a second at
    # a time (two rows here, packed where that pays), a driver's software loop 0.2 s.
    assert 0.5 * n * REALTIME_JOURNAL_BYTES_PER_SAMPLE <= written
    assert written <= n * REALTIME_JOURNAL_BYTES_PER_SAMPLE
