"""Read and check a procedure, its cell and its station against each other.

Nothing touches an instrument (or imports the engine) here: `labctl validate`, `labctl
plan` and the console's Start check need only this, and stay quick to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.cells import load_cell
from labctl.cells.spec import CellSpec
from labctl.plugins import Registry, build_registry
from labctl.procedures import load_procedure
from labctl.procedures.model import CompiledProcedure
from labctl.stations.load import find_default_station, load_station
from labctl.stations.spec import StationSpec


@dataclass
class Prepared:
    """A procedure checked against a cell and a station, ready to run."""

    procedure: CompiledProcedure
    cell: CellSpec
    station: StationSpec
    registry: Registry
    procedure_path: Path
    params: dict[str, str]


def prepare(
    procedure_path: str | Path,
    *,
    station_path: str | Path | None = None,
    cell_ref: str | Path | None = None,
    params: dict[str, str] | None = None,
) -> Prepared:
    """Load and validate everything; raises ValidationError/LabctlError (exit 2) on any problem."""
    station_file = Path(station_path) if station_path else find_default_station()
    station = load_station(station_file)  # loads only the plugins the station lists
    registry = build_registry(station.plugin_files)
    from labctl.cells import DEFAULT_CELL

    cell = load_cell(cell_ref or DEFAULT_CELL)
    params = dict(params or {})
    procedure = load_procedure(procedure_path, cell=cell, station=station, params=params)
    return Prepared(procedure, cell, station, registry, Path(procedure_path), params)
