"""What an instrument is asked to do: leaf steps with SI values.

These are the objects the procedure compiler produces and the engine hands to
instruments. They carry resolved SI numbers (a C-rate is already turned into
amperes using the cell's capacity) plus the text they came from, so every
message can quote what the user wrote.

Sign convention everywhere: current and power positive = charge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class Mode(str, Enum):
    """How an electrical step controls the cell."""

    REST = "rest"  # zero current
    CURRENT = "current"  # constant current (signed, A)
    VOLTAGE = "voltage"  # constant voltage (V), current limited
    POWER = "power"  # constant power (signed, W)
    CURRENT_PROFILE = "current_profile"  # current vs time from a table
    POWER_PROFILE = "power_profile"  # power vs time from a table


class Quantity(str, Enum):
    """Measured quantities an end condition can watch."""

    VOLTAGE = "voltage_v"
    CURRENT = "current_a"  # compared by magnitude: "until C/20" means |I| <= I_end
    CHARGE = "charge_ah"  # magnitude of the charge moved in this step
    TEMPERATURE = "temperature_c"


@dataclass(frozen=True)
class SourceRef:
    """Where a step came from, for messages."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str = ""


@dataclass(frozen=True)
class EndCondition:
    """End the step when `quantity` crosses `value` in direction `op`.

    `op` is ">=" (rising through the value) or "<=" (falling through it).
    For Quantity.CURRENT and Quantity.CHARGE the magnitude is compared.
    """

    quantity: Quantity
    op: str  # ">=" or "<="
    value: float  # SI
    text: str = ""  # as written, e.g. "3.65 V" or "C/20"

    def describe(self) -> str:
        return self.text or f"{self.quantity.value} {self.op} {self.value:g}"


@dataclass(frozen=True)
class LoggingPolicy:
    """When to record a sample: every `period_s`, and additionally on changes.

    A sample is recorded when `period_s` has passed since the last one, or when
    voltage moved by `delta_v` or current by `delta_i` (None = not used).
    The first and last sample of every step are always recorded.
    """

    period_s: float = 1.0
    delta_v: float | None = None
    delta_i: float | None = None


@dataclass(frozen=True)
class Profile:
    """A time series to follow (drive cycles): value held from each time to the next."""

    time_s: tuple[float, ...]
    value: tuple[float, ...]  # A or W, signed (+ charge)
    name: str = ""


@dataclass(frozen=True)
class ElectricalStep:
    """One step on a cycler channel.

    `value` is A (CURRENT), V (VOLTAGE), W (POWER); 0 for REST; unused for
    profiles. `current_limit_a` bounds the current of VOLTAGE and POWER steps
    (a CV hold below its set-point charges at this current first, as a cycler
    does). `duration_s` ends the step by time; `until` ends it on any of the
    conditions, whichever comes first.
    """

    mode: Mode
    value: float = 0.0
    duration_s: float | None = None
    until: tuple[EndCondition, ...] = ()
    current_limit_a: float | None = None
    profile: Profile | None = None
    logging: LoggingPolicy = field(default_factory=LoggingPolicy)
    text: str = ""
    source: SourceRef = field(default_factory=SourceRef)

    @property
    def kind(self) -> str:
        """Short label for tables: charge, discharge, rest, hold, power, profile."""
        if self.mode is Mode.REST:
            return "rest"
        if self.mode is Mode.VOLTAGE:
            return "hold"
        if self.mode in (Mode.CURRENT_PROFILE, Mode.POWER_PROFILE):
            return "profile"
        return "charge" if self.value > 0 else "discharge"

    @property
    def is_charge(self) -> bool:
        return self.mode in (Mode.CURRENT, Mode.POWER) and self.value > 0


@dataclass(frozen=True)
class ChamberStep:
    """Move a thermal chamber to a set-point and wait until it is stable.

    Stable means the watched temperature (the chamber air, or the cell when
    `stabilise_on == "cell"`) stays within `tolerance_c` of the set-point for
    `stable_for_s`. `timeout_s` ends the step with an error if it never gets
    there. `wait=False` sets the chamber and moves on at once. `if_busy` says what
    to do when channels share the chamber and another one holds it (see
    `engine.sharing`).
    """

    setpoint_c: float
    ramp_c_per_min: float | None = None
    tolerance_c: float = 1.0
    stable_for_s: float = 0.0
    timeout_s: float = 4 * 3600.0
    stabilise_on: str = "cell"  # "cell" or "chamber"
    wait: bool = True
    # A chamber shared by several channels and held by another at a different
    # set-point: "wait" until it is released, or "reject" (end the run) at once.
    if_busy: str = "wait"
    logging: LoggingPolicy = field(default_factory=lambda: LoggingPolicy(period_s=10.0))
    text: str = ""
    source: SourceRef = field(default_factory=SourceRef)

    @property
    def kind(self) -> str:
        return "chamber"


# A leaf step is anything an instrument can execute. Plugins add more types: any
# object that satisfies `PluginStep` (see below) can be planned, checked and run.
LeafStep = ElectricalStep | ChamberStep


class PluginStep(Protocol):
    """A step type contributed by a plugin (EIS sweep, pressure set-point, BMS check...).

    The compiler builds it from a YAML mapping (`StepTypeInfo.compile`), a Python
    procedure may construct it directly. Before it starts, the engine calls
    `check(checker)`; a problem added there stops the step (and a YAML procedure
    before anything runs). `execute(run)` does the work through a `StepRun` and
    returns a `StepEnd`. If a run is interrupted inside such a step, `labctl
    resume` runs the step again from its start.
    """

    kind: str  # short label for the steps table: "eis", "pressure", ...
    text: str  # one line describing it, as shown in logs and tables
    source: SourceRef
    roles: tuple[str, ...]  # station roles it needs, e.g. ("pstat",)

    def check(self, checker: Any) -> None:
        """Add problems through `checker.add(None, message)`; see `procedures.check.StepChecker`."""
        ...

    def execute(self, run: Any) -> Any:
        """Do the step through `labctl.engine.step_run.StepRun`; return a `StepEnd`."""
        ...


def is_plugin_step(step: object) -> bool:
    return not isinstance(step, (ElectricalStep, ChamberStep)) and callable(
        getattr(step, "execute", None)
    )
