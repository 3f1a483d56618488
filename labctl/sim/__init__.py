"""The simulated world: shared clock and ambient, cell physics and simulated instruments.

Its names load on first use (`labctl/lazy.py`): channel threads enter this package
through different modules (`sim.chamber` for a station with a chamber, `sim.cycler`
without).
"""

from labctl.lazy import lazy_names

__all__ = ["CellState", "SimChamber", "SimCyclerChannel", "SimWorld"]
__getattr__, __dir__ = lazy_names(__name__, {
    "CellState": "labctl.sim.ecm",
    "SimChamber": "labctl.sim.chamber",
    "SimCyclerChannel": "labctl.sim.cycler",
    "SimWorld": "labctl.sim.world",
})
