"""Plain records shared by the engine, the procedures and the store.

`SAMPLE_COLUMNS` is the schema of the journal's sample records and of the
`timeseries` table. `StepResult` is what the engine records when a step ends
and what a procedure (YAML `repeat ... until`, or a Python generator) receives.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Column name -> numpy dtype. Order is the on-disk order.
SAMPLE_COLUMNS: dict[str, np.dtype] = {
    "test_time_s": np.dtype("<f8"),  # seconds since the run started
    "unix_time_s": np.dtype("<f8"),  # UTC seconds (synthetic in virtual time: start + test time)
    "step_index": np.dtype("<i4"),  # 1, 2, ... in execution order
    "cycle_index": np.dtype("<i4"),  # 1, 2, ...
    "voltage_v": np.dtype("<f8"),
    "current_a": np.dtype("<f8"),  # positive = charge
    "temperature_c": np.dtype("<f8"),  # cell temperature, NaN when not measured
    # Cumulative within the current cycle, all >= 0 (the cycler convention):
    "charge_capacity_ah": np.dtype("<f8"),
    "discharge_capacity_ah": np.dtype("<f8"),
    "charge_energy_wh": np.dtype("<f8"),
    "discharge_energy_wh": np.dtype("<f8"),
}

SAMPLE_DTYPE = np.dtype([(name, dt) for name, dt in SAMPLE_COLUMNS.items()])


@dataclass(frozen=True)
class StepResult:
    """The outcome of one executed step (one row of the `steps` table)."""

    step_index: int
    cycle_index: int
    kind: str  # charge, discharge, rest, hold, power, profile, chamber, ...
    text: str  # the step as written
    path: str  # where in the procedure, e.g. "steps[2].steps[0]"
    end_kind: str  # condition, time, limit, safety, aborted, fault
    end_reason: str
    start_time_s: float
    end_time_s: float
    duration_s: float
    n_samples: int
    charge_capacity_ah: float
    discharge_capacity_ah: float
    charge_energy_wh: float
    discharge_energy_wh: float
    start_voltage_v: float
    end_voltage_v: float
    mean_voltage_v: float  # time-weighted
    mean_current_a: float  # time-weighted
    end_current_a: float
    max_temperature_c: float
    end_temperature_c: float

    def as_dict(self) -> dict:
        # Plain fields only, so no deep copy (dataclasses.asdict costs ~0.2 ms per step).
        return {name: getattr(self, name) for name in _RESULT_FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> StepResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def net_capacity_ah(self) -> float:
        return self.charge_capacity_ah - self.discharge_capacity_ah


_RESULT_FIELDS = tuple(f.name for f in fields(StepResult))
