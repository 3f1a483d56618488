"""What a compiled procedure looks like to the engine.

A procedure, whether a YAML file or a Python generator, becomes a *plan*: a
generator that yields `PlannedStep`s and receives each step's `StepResult`
(Bluesky-style). The engine only ever sees leaf steps. Resuming a run replays
the plan with the recorded results of the finished steps.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import LeafStep
from labctl.records import StepResult


@dataclass(frozen=True)
class PlannedStep:
    """A leaf step plus where it sits in the procedure."""

    step: LeafStep
    path: str  # e.g. "steps[3].steps[1]"; "python" for generator procedures
    new_cycle: bool = False  # start a new cycle index before this step (repeat iterations)
    iteration: tuple[int, ...] = ()  # repeat iteration numbers from outermost, 1-based


Plan = Generator[PlannedStep, StepResult, None]


@dataclass
class CompiledProcedure:
    """A validated procedure bound to a cell and station, ready to run."""

    name: str
    description: str
    file: str
    text: str  # the procedure file's text as read
    sha256: str  # of `text` (and included files, in order)
    parameters: dict[str, Any]  # resolved values
    required_roles: tuple[str, ...]
    safety: SafetyLimits  # cell limits + tolerances, tightened by the procedure
    make_plan: Callable[[], Plan]  # a fresh plan generator each call
    included_files: tuple[str, ...] = ()
    max_duration_s: float | None = None  # global guard: the run stops after this long
    extra: dict[str, Any] = field(default_factory=dict)

    def plan(self) -> Plan:
        return self.make_plan()
