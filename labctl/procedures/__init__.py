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
from typing import TYPE_CHECKING, Any

from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.procedures.check import check_step
from labctl.procedures.compiler import load_yaml_procedure, loads_procedure
from labctl.procedures.conditions import MetricCondition, iteration_metrics, parse_until
from labctl.procedures.grammar import parse_logging, parse_step
from labctl.procedures.model import CompiledProcedure, Plan, PlannedStep
from labctl.stations.spec import StationSpec

if TYPE_CHECKING:
    from labctl.procedures.python_proc import ProcedureContext
    from labctl.procedures.python_proc import load_python_procedure as load_python_procedure

# Python procedures (`.py` files) are imported only when one is loaded or their names are
# asked for (PEP 562 below): a YAML run does not need python_proc, inspect or traceback.
_PYTHON_PROC_NAMES = ("ProcedureContext", "load_python_procedure")


def __getattr__(name: str) -> Any:
    if name in _PYTHON_PROC_NAMES:
        from labctl.procedures import python_proc

        return getattr(python_proc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        from labctl.procedures.python_proc import load_python_procedure

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
