"""Synthetic runs with closed-form truth, written through the store's public API.

Each cycle: charge at +I for T s, rest, discharge at -I for T s, rest; samples
every `dt` s; voltage linear within a step; the cumulative counters restart at
each cycle and are integrated exactly here (constant current, linear voltage),
so every capacity, energy and mean has a closed form the tests compare with.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labctl.records import SAMPLE_COLUMNS
from labctl.store.journal import JournalWriter
from labctl.store.rundir import RunDir

CUMULATIVE = ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
              "discharge_energy_wh")
UNIX0 = 1_790_000_000.0


@dataclass
class PlannedStep:
    index: int
    cycle: int
    kind: str
    current_a: float
    duration_s: float
    v_start: float
    v_end: float

    @property
    def mean_voltage_v(self) -> float:
        return 0.5 * (self.v_start + self.v_end)

    @property
    def charge_ah(self) -> float:
        return max(self.current_a, 0.0) * self.duration_s / 3600

    @property
    def discharge_ah(self) -> float:
        return max(-self.current_a, 0.0) * self.duration_s / 3600

    @property
    def charge_wh(self) -> float:
        return self.charge_ah * self.mean_voltage_v

    @property
    def discharge_wh(self) -> float:
        return self.discharge_ah * self.mean_voltage_v


@dataclass
class SynthRun:
    path: Path
    plan: list[PlannedStep]
    samples: dict[str, np.ndarray]
    crashed_step: int | None = None
    step_samples: dict[int, int] = field(default_factory=dict)


def make_plan(rng: np.random.Generator, n_cycles: int = 3) -> list[PlannedStep]:
    plan: list[PlannedStep] = []
    for cycle in range(1, n_cycles + 1):
        i_c, i_d = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
        for kind, cur, dur, va, vb in (
            ("charge", i_c, 10.0 * rng.integers(30, 60), 3.0, 3.6),
            ("rest", 0.0, 120.0, 3.5, 3.45),
            ("discharge", -i_d, 10.0 * rng.integers(28, 56), 3.4, 2.9),
            ("rest", 0.0, 120.0, 3.0, 3.1),
        ):
            plan.append(PlannedStep(len(plan) + 1, cycle, kind, cur, dur, va, vb))
    return plan


def _step_columns(step: PlannedStep, t0: float, dt: float, counters: dict[str, float]
                  ) -> dict[str, np.ndarray]:
    n = int(round(step.duration_s / dt))
    assert n * dt == step.duration_s, "durations are whole multiples of the sampling interval"
    local = np.arange(n + 1) * dt  # the first sample shares its time with the previous end
    t = t0 + local
    v = step.v_start + (step.v_end - step.v_start) * local / step.duration_s
    frac = local / step.duration_s
    cols = {
        "test_time_s": t,
        "unix_time_s": UNIX0 + t,
        "step_index": np.full(n + 1, step.index, np.int32),
        "cycle_index": np.full(n + 1, step.cycle, np.int32),
        "voltage_v": v,
        "current_a": np.full(n + 1, step.current_a),
        "temperature_c": 25.0 + step.index + 0.5 * frac,
        # Exact integrals of a constant current and a linear voltage up to each sample.
        "charge_capacity_ah": counters["charge_capacity_ah"] + step.charge_ah * frac,
        "discharge_capacity_ah": counters["discharge_capacity_ah"] + step.discharge_ah * frac,
        "charge_energy_wh": counters["charge_energy_wh"]
        + max(step.current_a, 0) / 3600 * (step.v_start * local
                                           + (step.v_end - step.v_start) * local**2
                                           / (2 * step.duration_s)),
        "discharge_energy_wh": counters["discharge_energy_wh"]
        + max(-step.current_a, 0) / 3600 * (step.v_start * local
                                            + (step.v_end - step.v_start) * local**2
                                            / (2 * step.duration_s)),
    }
    cols["temperature_c"][min(3, n)] = np.nan  # a missing reading
    return cols


def step_result(step: PlannedStep, t0: float, n: int) -> dict:
    """The step_end result, from the closed forms (not from the store's code)."""
    return {
        "step_index": step.index, "cycle_index": step.cycle, "kind": step.kind,
        "text": f"{step.kind} {step.index}", "path": f"steps[{step.index - 1}]",
        "end_kind": "time", "end_reason": "time elapsed",
        "start_time_s": t0, "end_time_s": t0 + step.duration_s, "duration_s": step.duration_s,
        "n_samples": n,
        "charge_capacity_ah": step.charge_ah, "discharge_capacity_ah": step.discharge_ah,
        "charge_energy_wh": step.charge_wh, "discharge_energy_wh": step.discharge_wh,
        "start_voltage_v": step.v_start, "end_voltage_v": step.v_end,
        "mean_voltage_v": step.mean_voltage_v, "mean_current_a": step.current_a,
        "end_current_a": step.current_a, "max_temperature_c": 25.0 + step.index + 0.5,
        "end_temperature_c": 25.0 + step.index + 0.5,
    }


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_run(root: Path, run_id: str, rng: np.random.Generator, *, n_cycles: int = 3,
              dt: float = 2.0, crash_in_step: int | None = None,
              block_rows: tuple[int, int] = (7, 90)) -> SynthRun:
    """A run directory with a journal following the engine's event contract.

    With `crash_in_step`, the journal stops half-way through that step (no
    step_end, no run_end) and run.json still says "running" with a dead pid.
    """
    plan = make_plan(rng, n_cycles)
    rd = RunDir.create(root, run_id, {
        "status": "running", "reason": "", "clock": "virtual",
        "procedure": {"name": "synthetic", "file": "synthetic.yaml", "sha256": "0" * 64},
        "cell": {"name": "cell-a", "chemistry": "LFP", "capacity_ah": 2.2, "file": None},
        "station": {"name": "sim", "file": None, "instruments": {"cycler": {"model": "sim"}}},
        "started_unix_s": UNIX0, "ended_unix_s": None,
    })
    w = JournalWriter.create(rd.path)
    w.append_event({"type": "run_start", "test_time_s": 0.0, "unix_time_s": UNIX0})
    t0, parts, counts = 0.0, [], {}
    counters = dict.fromkeys(CUMULATIVE, 0.0)
    last_cycle = 0
    crashed = None
    for step in plan:
        if step.cycle != last_cycle:
            counters, last_cycle = dict.fromkeys(CUMULATIVE, 0.0), step.cycle
        w.append_event({"type": "step_start", "step_index": step.index, "cycle_index": step.cycle,
                        "path": f"steps[{step.index - 1}]", "kind": step.kind,
                        "text": f"{step.kind} {step.index}", "test_time_s": t0})
        cols = _step_columns(step, t0, dt, counters)
        n = len(cols["test_time_s"])
        if crash_in_step == step.index:
            n = n // 2
            cols = {k: c[:n] for k, c in cols.items()}
        lo = 0
        while lo < n:  # blocks of uneven size, as an instrument streams them
            hi = min(n, lo + int(rng.integers(*block_rows)))
            w.append_samples({k: c[lo:hi] for k, c in cols.items()})
            w.append_event({"type": "state", "step_index": step.index,
                            "test_time_s": float(cols["test_time_s"][hi - 1]),
                            "instruments": {"cycler": {"soc": float(rng.uniform())}}})
            lo = hi
        parts.append(cols)
        counts[step.index] = n
        if crash_in_step == step.index:
            crashed = step.index
            break
        w.append_event({"type": "step_end", "result": step_result(step, t0, n)})
        counters = {k: float(cols[k][-1]) for k in CUMULATIVE}
        t0 += step.duration_s
    if crashed is None:
        w.append_event({"type": "run_end", "status": "completed", "reason": "all steps done",
                        "test_time_s": t0})
    w.close()
    if crashed is None:
        rd.update_meta(status="completed", reason="all steps done", ended_unix_s=UNIX0 + t0)
    else:
        rd.update_meta(pid=dead_pid())
    samples = {k: np.concatenate([p[k] for p in parts]).astype(d)
               for k, d in SAMPLE_COLUMNS.items()}
    return SynthRun(rd.path, plan, samples, crashed, counts)
