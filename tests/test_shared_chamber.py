"""Channels in one chamber: a chamber step waits for the others, or is rejected, as the
procedure says; channels asking for the same set-point share it."""

from __future__ import annotations

import threading
import time

import pytest

import labctl
import labctl.drivers.sim_drivers  # noqa: F401 - imported now, not by a channel's thread
import labctl.sim.chamber  # noqa: F401
import labctl.sim.cycler  # noqa: F401
from labctl.engine.control import RunControl
from labctl.engine.multi import ChannelJob, prepare_all, run_channels
from labctl.engine.sharing import SharedChamber

HOLDER = """\
log: every 60 s
steps:
  - chamber: {setpoint_c: 45, wait: false}
  - Rest for 60 min
"""

ASKER = """\
log: every 60 s
steps:
  - Rest for 15 min
  - chamber: {{setpoint_c: {setpoint}, wait: false, if_busy: {if_busy}}}
  - Rest for 1 min
"""


def _run(tmp_path, setpoint: float, if_busy: str, processes: int = 1):
    holder = tmp_path / "holder.yaml"
    holder.write_text(HOLDER)
    asker = tmp_path / "asker.yaml"
    asker.write_text(ASKER.format(setpoint=setpoint, if_busy=if_busy))
    jobs = [ChannelJob("1", str(holder)), ChannelJob("2", str(asker))]
    prepared = prepare_all(jobs)
    # Paced so that channel 1 holds the chamber for ~3 s of wall time while channel 2 asks
    # for it after ~0.75 s: margin for channel 1's thread to start late on a busy machine
    # (the simulator's modules are imported beforehand, below, for the same reason).
    outcomes = run_channels(prepared, results_root=tmp_path / "r",
                            controls=[RunControl(), RunControl()], speed=1200,
                            processes=processes)
    return outcomes


@pytest.mark.parametrize("processes", [1, 2])
def test_reject_ends_the_asking_run_and_names_the_holder(tmp_path, processes):
    # processes=2 (`labctl run`'s default on two cores): the two channels of one chamber
    # must still meet in one worker process, or each drives the chamber its own way.
    first, second = _run(tmp_path, 25, "reject", processes)
    assert first.status == "completed"
    assert second.status == "aborted"
    assert "held at 45 °C by channel 1" in second.reason
    assert "safe state" in (second.path / "log.txt").read_text()


def test_wait_resumes_when_the_holder_releases(tmp_path):
    first, second = _run(tmp_path, 25, "wait")
    assert first.status == "completed" and second.status == "completed", second.reason
    log = (second.path / "log.txt").read_text()
    assert "waiting for channel 1 to release the chamber" in log
    assert "chamber released by the other channels" in log
    # Channel 2's chamber step started only after channel 1 released the chamber (its end).
    end_1 = labctl.open_run(first.path).meta["ended_unix_s"]
    steps_2 = labctl.open_run(second.path).steps
    assert list(steps_2.kind) == ["rest", "chamber", "rest"]
    assert end_1 is not None and (second.path / "status.json").stat().st_mtime >= end_1 - 0.5


def test_same_setpoint_is_shared_without_waiting(tmp_path):
    first, second = _run(tmp_path, 45, "reject")
    assert first.status == "completed" and second.status == "completed"
    assert "waiting" not in (second.path / "log.txt").read_text()


def test_claims_unit():
    shared = SharedChamber()
    never = lambda: False  # noqa: E731
    assert shared.claim("1", 45, wait=False, timeout_s=1, should_stop=never,
                        on_wait=lambda *a: None) is None
    assert "channel 1" in shared.claim("2", 25, wait=False, timeout_s=1, should_stop=never,
                                       on_wait=lambda *a: None)
    # A waiting claim is granted as soon as the holder releases.
    granted = {}

    def wait_for_it():
        granted["why"] = shared.claim("2", 25, wait=True, timeout_s=10, should_stop=never,
                                      on_wait=lambda *a: granted.setdefault("waited", True))

    t = threading.Thread(target=wait_for_it)
    t.start()
    time.sleep(0.2)
    assert t.is_alive() and granted.get("waited")
    shared.release("1")
    t.join(timeout=5)
    assert granted["why"] is None and shared.claims == {"2": 25}
    # A timeout is reported, not waited forever.
    why = shared.claim("3", 60, wait=True, timeout_s=0.2, should_stop=never,
                       on_wait=lambda *a: None)
    assert why is not None and "after waiting 0.2 s" in why


@pytest.mark.parametrize("bad", ["later", 3])
def test_bad_if_busy_is_located(tmp_path, bad):
    from labctl.engine.session import prepare
    from labctl.errors import ValidationError

    p = tmp_path / "p.yaml"
    p.write_text(f"steps:\n  - chamber: {{setpoint_c: 30, if_busy: {bad}}}\n")
    with pytest.raises(ValidationError) as info:
        prepare(p)
    problem = info.value.problems[0]
    assert problem.line == 2 and "if_busy must be one of wait, reject" in problem.message


def test_worker_shares_keep_a_driven_chamber_in_one_process(tmp_path):
    from labctl.engine.multi import worker_shares

    rest = tmp_path / "rest.yaml"
    rest.write_text("steps:\n  - Rest for 1 min\n")
    warm = tmp_path / "warm.yaml"
    warm.write_text("steps:\n  - chamber: {setpoint_c: 35, wait: false}\n  - Rest for 1 min\n")
    no_chamber = tmp_path / "cycler-only.yaml"
    no_chamber.write_text("name: cycler-only\ninstruments:\n  cycler: {driver: sim-cycler}\n")
    # The default station has a chamber; channel 1 drives it, 2 and 3 sit in it.
    jobs = [ChannelJob("1", str(warm))] + [ChannelJob(str(k), str(rest)) for k in (2, 3)]
    jobs += [ChannelJob(str(k), str(rest), station=str(no_chamber)) for k in (4, 5, 6)]
    prepared = prepare_all(jobs)
    shares = worker_shares(prepared, 3)
    assert sorted(k for share in shares for k in share) == list(range(6))  # each once
    assert [0, 1, 2] in shares  # the chamber's three channels in one worker
    assert len(shares) == 3 and sorted(len(s) for s in shares) == [1, 2, 3]
    # Fewer groups than workers asked for: no empty workers.
    assert worker_shares(prepared[:3], 4) == [[0, 1, 2]]
    # Nobody drives the chamber: its channels spread like any others.
    assert worker_shares(prepared[1:3], 2) == [[0], [1]]


def test_one_chamber_address_is_one_chamber_whichever_station_file_names_it():
    from labctl.engine.sharing import chamber_key
    from labctl.stations.spec import InstrumentSpec, StationSpec

    def station(source: str, driver: str, **settings) -> StationSpec:
        return StationSpec(name=source, source=source, instruments={
            "chamber": InstrumentSpec("chamber", driver, settings)})

    gpib5 = chamber_key(station("/lab/bench-a.yaml", "thermotron-3800", address="GPIB0::5::INSTR"))
    assert gpib5 == chamber_key(station("/lab/bench-b.yaml", "thermotron-3800",
                                        address="GPIB0::5::INSTR", timeout_s=5))
    assert gpib5 != chamber_key(station("/lab/bench-a.yaml", "thermotron-3800",
                                        address="GPIB0::6::INSTR"))
    # `labctl plan`'s twin of that chamber (labctl/plan/twin.py marks it) claims on its own.
    assert gpib5 != chamber_key(station("/lab/bench-a.yaml", "thermotron-3800",
                                        address="GPIB0::5::INSTR", plan_twin=1))
    # A simulated chamber has no address: one per station file, as before.
    assert chamber_key(station("/lab/a.yaml", "sim-chamber")) != \
        chamber_key(station("/lab/b.yaml", "sim-chamber"))
    assert chamber_key(StationSpec(name="x", instruments={})) is None
