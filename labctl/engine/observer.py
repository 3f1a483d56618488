"""What the engine tells the outside while it runs (progress bars, tests, dashboards)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Type hints only: a dashboard or test that subclasses RunObserver need not load the
# procedure language (and numpy) just to do so.
if TYPE_CHECKING:
    import numpy as np

    from labctl.procedures.model import PlannedStep
    from labctl.records import StepResult


class RunObserver:
    """No-op base; override what you need. Called from the engine's thread."""

    def run_started(self, info: dict[str, Any]) -> None: ...

    def step_started(self, step_index: int, cycle_index: int, planned: PlannedStep) -> None: ...

    def samples(self, columns: dict[str, np.ndarray]) -> None: ...

    def step_ended(self, result: StepResult) -> None: ...

    def log(self, level: str, message: str) -> None: ...

    def run_ended(self, status: str, reason: str) -> None: ...
