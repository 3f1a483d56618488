"""The cycler channel capability: run one electrical step, stream samples back.

Real cyclers execute steps on their own controllers and stream data; so does
the simulator. A bare source-measure unit gets the same method from the
generic software loop in `software_loop.py`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy


class EndKind(str, Enum):
    CONDITION = "condition"  # one of the step's `until` conditions fired
    TIME = "time"  # the step's duration elapsed
    LIMIT = "limit"  # the instrument's current limit or a cell limit ended it early
    SAFETY = "safety"  # a safety limit was crossed: the run stops
    ABORTED = "aborted"  # the user or the engine stopped it
    FAULT = "fault"  # the instrument failed


@dataclass(frozen=True)
class StepEnd:
    """Why a step ended."""

    kind: EndKind
    reason: str  # e.g. "reached 3.65 V", "time elapsed", "safety: temperature 61 °C > 60 °C"
    condition_index: int | None = None  # which `until` condition fired


@dataclass
class SampleBatch:
    """Samples recorded during one step; times are seconds since the step started.

    Arrays all have the same length. `charge_ah` and `discharge_ah` are the
    cumulative charge moved into / out of the cell since the step started (both
    >= 0, non-decreasing) and `charge_wh` / `discharge_wh` the same for energy,
    as integrated by the instrument at its own rate. An instrument that does not
    integrate leaves them None and the engine integrates the logged samples.
    `state` is an opaque snapshot of the instrument at the last sample (the
    simulator uses it so that `labctl resume` continues from the same cell state).
    """

    step_time_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    temperature_c: np.ndarray
    charge_ah: np.ndarray | None = None
    discharge_ah: np.ndarray | None = None
    charge_wh: np.ndarray | None = None
    discharge_wh: np.ndarray | None = None
    state: dict[str, Any] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.step_time_s)


@dataclass(frozen=True)
class CyclerRanges:
    """What the channel can physically do (validation rejects steps outside)."""

    max_current_a: float
    max_voltage_v: float
    min_voltage_v: float = 0.0
    max_power_w: float | None = None


@runtime_checkable
class CyclerChannel(Protocol):
    """One cycler channel with one cell on it."""

    ranges: CyclerRanges

    def identify(self) -> dict[str, str]:
        """Identity for the run's snapshot: make, model, serial, firmware, calibration."""
        ...

    def run_step(
        self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy
    ) -> Generator[SampleBatch, None, StepEnd]:
        """Execute `step`, yielding sample batches; return why it ended.

        The channel ends the step itself when a `limits` value is crossed
        (returning EndKind.SAFETY) and its last sample is the crossing sample.
        Closing the generator early (the engine aborting) must leave the output off.
        """
        ...

    def safe_state(self) -> None:
        """Output off (zero current, relay open). Must never raise for a healthy link."""
        ...

    def close(self) -> None: ...
