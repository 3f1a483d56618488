"""The procedure language: YAML files and Python generators compiled into plans.

Public entry points:

- `load_procedure(path, cell=..., station=..., params=...)` -> CompiledProcedure
- `validate_procedure(...)` -> list of Problems (empty = valid)
- `check_step(step, cell=..., station=..., safety=...)` -> list of Problems
- `parse_step(text, cell=...)` -> ElectricalStep (the step grammar)

See docs/procedures.md for the file format and the grammar.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.procedures.check import check_step
from labctl.procedures.compiler import load_yaml_procedure, loads_procedure
from labctl.procedures.conditions import MetricCondition, iteration_metrics, parse_until
from labctl.procedures.grammar import parse_logging, parse_step
from labctl.procedures.model import CompiledProcedure, Plan, PlannedStep
from labctl.procedures.python_proc import ProcedureContext, load_python_procedure
from labctl.stations.spec import StationSpec


def load_procedure(
    path: str | Path,
    *,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
) -> CompiledProcedure:
    """Parse, substitute parameters, compile and validate a procedure file.

    `.py` files are Python procedures; anything else is YAML. Raises
    ValidationError listing every problem found.
    """
    if Path(path).suffix.lower() == ".py":
        return load_python_procedure(path, cell=cell, station=station, params=params)
    return load_yaml_procedure(path, cell=cell, station=station, params=params)


def validate_procedure(
    path: str | Path,
    *,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The checks of `load_procedure`, as a list of problems (empty = valid)."""
    try:
        load_procedure(path, cell=cell, station=station, params=params)
    except ValidationError as exc:
        return list(exc.problems)
    except LabctlError as exc:
        return [Problem(str(path), None, None, "", str(exc))]
    return []


__all__ = [
    "CompiledProcedure",
    "MetricCondition",
    "Plan",
    "PlannedStep",
    "ProcedureContext",
    "check_step",
    "iteration_metrics",
    "load_procedure",
    "loads_procedure",
    "parse_logging",
    "parse_step",
    "parse_until",
    "validate_procedure",
]
