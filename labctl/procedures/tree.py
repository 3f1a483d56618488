"""Compiled procedure trees (Leaf and Repeat nodes) and the plan generator that walks them.

The tree is immutable; every call of `make_plan` walks it afresh, so replaying a
plan with the same StepResults yields the same steps (crash resume relies on it).
Loop decisions depend only on the results sent in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.capabilities.steps import LeafStep
from labctl.procedures.conditions import (
    MetricCondition,
    MetricHistory,
    any_holds,
    iteration_metrics,
)
from labctl.procedures.model import Plan, PlannedStep
from labctl.records import StepResult

DEFAULT_MAX_ITERATIONS = 10_000


@dataclass(frozen=True)
class Leaf:
    """One step of a procedure and where it is written (`steps[2].steps[0]`)."""

    step: LeafStep
    path: str


@dataclass(frozen=True)
class Repeat:
    """A loop: its body, a count and/or `until` conditions, and a cap on iterations."""

    body: tuple[Node, ...]
    count: int | None  # fixed number of iterations, or None (until/cap only)
    until: tuple[MetricCondition, ...] = ()
    cap: int = DEFAULT_MAX_ITERATIONS  # hard cap so a loop cannot run forever
    cycle: bool = True  # each iteration starts a new cycle index
    path: str = ""


Node = Leaf | Repeat


@dataclass
class _WalkState:
    """What the walk keeps across a procedure: loop counters, results per loop, a new cycle due."""

    iterations: list[int] = field(default_factory=list)
    sinks: list[list[StepResult]] = field(default_factory=list)
    pending_new_cycle: bool = False


def _walk(nodes: tuple[Node, ...], state: _WalkState) -> Plan:
    for node in nodes:
        if isinstance(node, Leaf):
            new_cycle = state.pending_new_cycle
            state.pending_new_cycle = False
            result = yield PlannedStep(node.step, node.path, new_cycle, tuple(state.iterations))
            if result is not None:
                for sink in state.sinks:
                    sink.append(result)
            continue
        history = MetricHistory()
        limit = node.cap if node.count is None else min(node.count, node.cap)
        i = 0
        while i < limit:
            i += 1
            results: list[StepResult] = []
            state.iterations.append(i)
            state.sinks.append(results)
            if node.cycle:
                state.pending_new_cycle = True
            try:
                yield from _walk(node.body, state)
            finally:
                state.sinks.pop()
                state.iterations.pop()
            if node.until:
                history.append(iteration_metrics(results))
                if any_holds(node.until, history):
                    break


def make_plan(nodes: tuple[Node, ...]) -> Plan:
    """A fresh plan generator over the compiled tree."""
    return _walk(nodes, _WalkState())


def leaves(nodes: tuple[Node, ...]) -> list[Leaf]:
    """Every leaf in the tree once (loop bodies not expanded)."""
    out: list[Leaf] = []
    for node in nodes:
        if isinstance(node, Leaf):
            out.append(node)
        else:
            out.extend(leaves(node.body))
    return out
