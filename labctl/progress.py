"""The live progress line of `labctl run`: step, virtual time, voltage, current, temperature."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from labctl.engine.observer import RunObserver
from labctl.procedures.model import PlannedStep
from labctl.records import StepResult
from labctl.report.quantities import format_hms

REFRESH_S = 0.1  # at most 10 updates a second: virtual time can run very fast




class RichProgress(RunObserver):
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[step]}[/bold]"),
            TextColumn("t={task.fields[time]}"),
            TextColumn("{task.fields[v]} V"),
            TextColumn("{task.fields[i]} A"),
            TextColumn("{task.fields[t]} °C"),
            console=console,
            transient=False,
            refresh_per_second=10,
        )
        self.task: Any = None
        self._last = 0.0
        self._step = ""

    def __enter__(self) -> RichProgress:
        self.progress.start()
        self.task = self.progress.add_task(
            "run", total=None, step="starting", time="0:00:00", v="-", i="-", t="-"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step_started(self, step_index: int, cycle_index: int, planned: PlannedStep) -> None:
        self._step = f"step {step_index} (cycle {cycle_index}): {planned.step.text}"
        self.progress.update(self.task, step=self._step)

    def samples(self, columns: dict[str, np.ndarray]) -> None:
        now = time.monotonic()
        if now - self._last < REFRESH_S:
            return
        self._last = now
        temp = columns["temperature_c"][-1]
        self.progress.update(
            self.task,
            time=format_hms(float(columns["test_time_s"][-1])),
            v=f"{columns['voltage_v'][-1]:.4f}",
            i=f"{columns['current_a'][-1]:+.4f}",
            t=f"{temp:.1f}" if math.isfinite(temp) else "-",
        )

    def step_ended(self, result: StepResult) -> None:
        # A step without samples (an EIS sweep, a BMS check) has no end values: show "-".
        self.progress.update(
            self.task,
            time=format_hms(result.end_time_s) if math.isfinite(result.end_time_s) else "-",
            v=_shown(result.end_voltage_v, "{:.4f}"),
            i=_shown(result.end_current_a, "{:+.4f}"),
            t=_shown(result.end_temperature_c, "{:.1f}"),
        )

    def log(self, level: str, message: str) -> None:
        if level in ("warning", "error"):
            self.progress.console.print(f"[yellow]{level}[/yellow]: {message}")


def _shown(value: float, fmt: str) -> str:
    return fmt.format(value) if value is not None and math.isfinite(value) else "-"
