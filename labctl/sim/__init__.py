"""The simulated world: shared clock and ambient, cell physics and simulated instruments."""

from labctl.sim.chamber import SimChamber
from labctl.sim.cycler import SimCyclerChannel
from labctl.sim.ecm import CellState
from labctl.sim.world import SimWorld

__all__ = ["CellState", "SimChamber", "SimCyclerChannel", "SimWorld"]
