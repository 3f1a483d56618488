"""What the engine tells the outside while it runs (progress bars, tests, dashboards)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# numpy stays a real import although only the hints use it: `labctl run` imports this
# module first, and numpy imported here (before the procedure language) took ~10 ms less
# than when labctl.cells.load imported it, in numpy._typing (measured with -X importtime;
# cause not pinned down). Do not move it under TYPE_CHECKING without measuring again.
import numpy as np

# Type hints only: a dashboard or test that subclasses RunObserver need not load the
# procedure language just to do so.
if TYPE_CHECKING:
    from labctl.procedures.model import PlannedStep
    from labctl.records import StepResult


class RunObserver:
    """No-op base; override what you need. Called from the engine's thread."""

    def run_started(self, info: dict[str, Any]) -> None: ...

    def step_started(self, step_index: int, cycle_index: int, planned: PlannedStep) -> None: ...

    def samples(self, columns: dict[str, np.ndarray]) -> None: ...

    def step_ended(self, result: StepResult) -> None: ...

    def log(self, level: str, message: str) -> None: ...

    def logged_elsewhere(self, step_index: int, what: str, count: int) -> None:
        """A step logged `count` items outside the journal ("can_frames": RUN/can/)."""

    def run_ended(self, status: str, reason: str) -> None: ...
