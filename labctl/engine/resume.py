"""Where an interrupted run stands: rebuilt from its journal for `labctl resume`.

The journal holds samples, step boundaries and (for simulated instruments) state
snapshots. A run killed at any record boundary must resume without repeating
measured work: finished steps are replayed from their results, the open step is
continued, and the simulated cell starts from the state its last samples imply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.engine.accounting import COUNTERS, CycleCounter
from labctl.errors import LabctlError
from labctl.records import StepResult
from labctl.store.journal import read_journal


@dataclass
class Continuation:
    """A step that was running when the previous session ended."""

    step_index: int
    cycle_index: int
    path: str
    text: str
    start_test_time_s: float
    elapsed_s: float
    moved_ah: float
    samples: dict[str, np.ndarray]  # what the journal holds of it


@dataclass
class ResumeState:
    """What an interrupted run's journal says the resumed run continues from."""

    results: list[StepResult]
    continuation: Continuation | None
    counter: CycleCounter
    last_step_index: int
    session: int
    instrument_states: dict[str, dict] = field(default_factory=dict)
    # samples journaled after the last snapshot (None: the snapshot covers them all)
    uncovered: dict[str, np.ndarray] | None = None
    uncovered_has_reference: bool = False
    notes: list[str] = field(default_factory=list)  # what the resume did, for the log


def resume_state(run_path: Path, session: int) -> tuple[ResumeState, float]:
    """Rebuild the engine's position from the journal; returns it and the last test time.

    `ResumeState.uncovered` holds the samples journaled after the last instrument
    snapshot (a cut between a batch's samples and its state record): the snapshot
    alone would put the cell back where it was before them, and the step would run
    again (`restore_instruments` moves the snapshot on by what they measured).
    """
    data = read_journal(run_path)
    events = data.events
    samples = data.samples
    results = [StepResult.from_dict(e["result"]) for e in events if e.get("type") == "step_end"]
    ended = {r.step_index for r in results}
    starts = [e for e in events if e.get("type") == "step_start"]
    open_starts = [e for e in starts if e["step_index"] not in ended]
    times = samples["test_time_s"]
    last_time = float(times[-1]) if len(times) else 0.0
    for e in events:
        last_time = max(last_time, float(e.get("test_time_s", 0.0) or 0.0))

    counter = CycleCounter()
    last_start_cycle = int(starts[-1]["cycle_index"]) if starts else 1
    if len(times):
        counter.cycle_index = int(samples["cycle_index"][-1])
        for name in COUNTERS:
            setattr(counter, name, float(samples[name][-1]))
        counter.active = counter.charge_capacity_ah > 0 or counter.discharge_capacity_ah > 0
    if last_start_cycle > counter.cycle_index:
        counter = CycleCounter(cycle_index=last_start_cycle)

    continuation = None
    if open_starts:
        start = open_starts[-1]
        mask = samples["step_index"] == start["step_index"]
        step_samples = {k: v[mask] for k, v in samples.items()}
        st = step_samples["test_time_s"]
        elapsed = float(st[-1] - start["test_time_s"]) if len(st) else 0.0
        moved = 0.0
        if len(st):
            moved = float(
                step_samples["charge_capacity_ah"][-1] - step_samples["charge_capacity_ah"][0]
                + step_samples["discharge_capacity_ah"][-1] - step_samples["discharge_capacity_ah"][0]
            )
        continuation = Continuation(
            step_index=int(start["step_index"]),
            cycle_index=int(start["cycle_index"]),
            path=start.get("path", ""),
            text=start.get("text", ""),
            start_test_time_s=float(start["test_time_s"]),
            elapsed_s=elapsed,
            moved_ah=moved,
            samples=step_samples,
        )
    states: dict[str, dict] = {}
    covered_s: float | None = None
    for e in events:
        if e.get("type") == "state" and float(e.get("test_time_s", 0.0)) <= last_time + 1e-6:
            states = e.get("instruments", {})
            through = e.get("samples_through_s")
            covered_s = float(through if through is not None else e.get("test_time_s", 0.0))
    last_index = max([int(e["step_index"]) for e in starts], default=0)
    state = ResumeState(results, continuation, counter, last_index, session, states)
    if len(times):
        # No snapshot yet: the fresh instrument's state is the one the samples start from.
        after = times > covered_s + 1e-9 if covered_s is not None else np.ones(len(times), bool)
        if after.any():
            first = int(np.argmax(after))
            lo = max(first - 1, 0)  # the last covered sample is the reference
            state.uncovered = {k: v[lo:] for k, v in samples.items()}
            state.uncovered_has_reference = first > 0
    return state, last_time


def _net_charge_ah(samples: dict[str, np.ndarray], has_reference: bool) -> float:
    """Charge put in (+) or taken out (-) over `samples`, from the cycle counters.

    Counters restart at 0 when a cycle starts, so increments are taken within a cycle;
    the first sample is the reference (already in the snapshot) when `has_reference`.
    """
    net = samples["charge_capacity_ah"] - samples["discharge_capacity_ah"]
    cycles = samples["cycle_index"]
    total = 0.0 if has_reference else float(net[0])
    same = cycles[1:] == cycles[:-1]
    steps = np.where(same, np.diff(net), net[1:])
    return total + float(steps.sum())


def restore_instruments(station: Any, state: ResumeState, cell: Any) -> list[str]:
    """Give simulated instruments their last snapshot, moved on by any uncovered samples.

    Returns log lines saying what was done. Refuses (LabctlError) when samples lie
    beyond the snapshot of a simulated instrument whose state labctl cannot move on:
    resuming from the older snapshot would repeat what the samples already measured.
    """
    notes: list[str] = []
    uncovered = state.uncovered
    snapshots = dict(state.instrument_states)
    cycler = station.get("cycler")
    if uncovered is not None and "cycler" not in snapshots and hasattr(cycler, "get_state"):
        snapshots["cycler"] = cycler.get_state()  # as built: the cell's initial state
    for role, snapshot in snapshots.items():
        inst = station.get(role)
        if inst is None or not hasattr(inst, "set_state"):
            continue
        if uncovered is not None and role == "cycler":
            snapshot = _moved_on(inst, snapshot, uncovered, state.uncovered_has_reference, cell)
            n = len(uncovered["test_time_s"]) - (1 if state.uncovered_has_reference else 0)
            notes.append(f"the journal ends with {n} sample(s) after the last saved state of the "
                         f"simulated cell; its state was moved on by what they measured "
                         f"(SoC {snapshot['soc']:.4f})")
        inst.set_state(snapshot)
    return notes


def _moved_on(inst: Any, snapshot: dict, samples: dict[str, np.ndarray], has_reference: bool,
              cell: Any) -> dict:
    if "soc" not in snapshot:
        raise LabctlError(
            "cannot resume: the journal ends with samples measured after the last saved state of "
            "the simulated cycler, and its state cannot be rebuilt from them; resuming from the "
            "older state would repeat that part of the step"
        )
    capacity_ah = float(cell.capacity_ah)
    if hasattr(inst, "set_state") and hasattr(inst, "ageing_summary"):
        inst.set_state(snapshot)  # the aged capacity belongs to the snapshot's ageing
        capacity_ah *= float(inst.ageing_summary().get("capacity_fraction", 1.0))
    soc = float(snapshot["soc"]) + _net_charge_ah(samples, has_reference) / capacity_ah
    moved = dict(snapshot)
    moved["soc"] = min(1.0, max(0.0, soc))
    moved["temperature_c"] = float(samples["temperature_c"][-1])
    return moved




def check_inputs_unchanged(run_path: Path, meta: dict) -> None:
    """Before anything named in run.json is loaded: each file must equal its copy in inputs/.

    run.json is only a JSON file in a folder others may write to. A procedure turned into
    a `.py`, or a station listing new plugin files, would run their code during loading,
    before any later check could refuse it. So every file is compared byte for byte with
    the copy taken when the run started (read as data, never executed) first.
    """
    from labctl.plugins import local_plugin_files

    inputs = Path(run_path) / "inputs"
    proc_file = (meta.get("procedure") or {}).get("file")
    if not proc_file:
        raise LabctlError(f"{run_path}: run.json names no procedure file; cannot resume")
    pairs = [(Path(proc_file), inputs / ("procedure" + (Path(proc_file).suffix or ".yaml")),
              "procedure")]
    station_file = (meta.get("station") or {}).get("file")
    cell_file = (meta.get("cell") or {}).get("file")
    if not station_file or not cell_file:
        raise LabctlError(f"{run_path}: run.json names no station or cell file; cannot resume")
    pairs.append((Path(station_file), inputs / "station.yaml", "station"))
    pairs.append((Path(cell_file), inputs / "cell.yaml", "cell"))
    for path, copy, what in pairs:
        _same_as_copy(path, copy, what)
    # Now known to be the station the run used: check the plugin files it lists.
    for plugin in local_plugin_files(station_file):
        _same_as_copy(plugin, inputs / f"plugin-{plugin.name}", "plugin")


def _same_as_copy(path: Path, copy: Path, what: str) -> None:
    from labctl.fileio import os_error_text, read_regular_bytes

    try:
        kept = read_regular_bytes(copy, 50_000_000)
    except OSError as exc:
        raise LabctlError(f"cannot resume: the run's copy of its {what} file ({copy}) is missing "
                          f"or unreadable ({os_error_text(exc)}); run.json may have been edited"
                          ) from None
    try:
        now = read_regular_bytes(path, 50_000_000)
    except OSError as exc:
        raise LabctlError(f"cannot resume: {what} file {path}: {os_error_text(exc)}") from None
    if now != kept:
        raise LabctlError(f"cannot resume: {what} file {path} differs from the copy the run kept "
                          f"({copy}); restore it (nothing was loaded from it)")
