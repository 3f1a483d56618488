"""Typed interfaces of what instruments can do. No I/O lives here."""

from labctl.capabilities.chamber import ChamberRanges, ThermalChamber
from labctl.capabilities.cycler import CyclerChannel, CyclerRanges, EndKind, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import (
    ChamberStep,
    ElectricalStep,
    EndCondition,
    LoggingPolicy,
    Mode,
    Profile,
    Quantity,
    SourceRef,
)

# Role names a station file may bind, and the capability each role must provide.
ROLES = ("cycler", "chamber", "pstat", "press", "bms", "thermometer")

__all__ = [
    "ROLES",
    "ChamberRanges",
    "ChamberStep",
    "CyclerChannel",
    "CyclerRanges",
    "ElectricalStep",
    "EndCondition",
    "EndKind",
    "LoggingPolicy",
    "Mode",
    "Profile",
    "Quantity",
    "SafetyLimits",
    "SampleBatch",
    "SourceRef",
    "StepEnd",
    "ThermalChamber",
]
