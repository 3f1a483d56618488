"""Typed interfaces of what instruments can do. No I/O lives here.

The names below load from their modules on first use (`labctl/lazy.py`).
"""

from labctl.lazy import lazy_names

# Role names a station file may bind, and the capability each role must provide.
ROLES = ("cycler", "chamber", "pstat", "press", "bms", "thermometer")

_WHERE = {
    **dict.fromkeys(("ChamberRanges", "ThermalChamber"), "labctl.capabilities.chamber"),
    **dict.fromkeys(("CyclerChannel", "CyclerRanges", "EndKind", "SampleBatch", "StepEnd"),
                    "labctl.capabilities.cycler"),
    "SafetyLimits": "labctl.capabilities.limits",
    **dict.fromkeys(("ChamberStep", "ElectricalStep", "EndCondition", "LoggingPolicy", "Mode",
                     "Profile", "Quantity", "SourceRef"), "labctl.capabilities.steps"),
}
__all__ = ["ROLES", *sorted(_WHERE)]
__getattr__, __dir__ = lazy_names(__name__, _WHERE)
