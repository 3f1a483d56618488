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
from typing import TYPE_CHECKING

from labctl.errors import LabctlError, Problem, ValidationError
from labctl.lazy import lazy_names

if TYPE_CHECKING:
    from labctl.cells.spec import CellSpec
    from labctl.procedures.model import CompiledProcedure
    from labctl.stations.spec import StationSpec

# The names load from their modules on first use (`labctl/lazy.py`); Python procedures
# (`.py` files) need python_proc, inspect and traceback, which a YAML run does not.
__getattr__, __dir__ = lazy_names(__name__, {
    "check_step": "labctl.procedures.check",
    **dict.fromkeys(("load_yaml_procedure", "loads_procedure"), "labctl.procedures.compiler"),
    **dict.fromkeys(("MetricCondition", "iteration_metrics", "parse_until"),
                    "labctl.procedures.conditions"),
    **dict.fromkeys(("parse_logging", "parse_step"), "labctl.procedures.grammar"),
    **dict.fromkeys(("CompiledProcedure", "Plan", "PlannedStep"), "labctl.procedures.model"),
    **dict.fromkeys(("ProcedureContext", "load_python_procedure"),
                    "labctl.procedures.python_proc"),
})


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
    from labctl.procedures.compiler import load_yaml_procedure

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
