"""The simulated world: shared clock and ambient, cell physics and simulated instruments.

The names below load on first use (PEP 562), not when the package does. Channels of one
`labctl run` are threads of one process that may first import this package through
different modules (`sim.chamber` for a station with a chamber, `sim.cycler` without):
a package whose `__init__` imported its own modules could then leave two threads each
waiting for a module the other is importing, and Python hands one of them a partially
initialised module.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CellState": "labctl.sim.ecm",
    "SimChamber": "labctl.sim.chamber",
    "SimCyclerChannel": "labctl.sim.cycler",
    "SimWorld": "labctl.sim.world",
}

__all__ = ["CellState", "SimChamber", "SimCyclerChannel", "SimWorld"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
