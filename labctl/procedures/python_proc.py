"""Python procedures: a generator that yields steps and receives their results.

Only used when the user names a `.py` file: it is their own code, imported on
purpose with importlib. The module defines

    NAME = "ramp"                      # optional
    DESCRIPTION = "..."                # optional
    REQUIRES = ["cycler"]              # optional, default ["cycler"]
    PARAMETERS = {"pulse_c": {"default": 1.0, "unit": "C", "min": 0.1, "max": 3}}  # optional
    SAFETY = {"max_temperature_c": 50} # optional, may only tighten the cell's limits

    def procedure(ctx):
        result = yield ctx.step("Discharge at 1C for 10 s")
        if result.end_voltage_v > 3.0:
            ...

Steps are checked against the limits by the engine right before each starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labctl.capabilities import ROLES
from labctl.capabilities.steps import ChamberStep, LoggingPolicy, SourceRef
from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.fileio import os_error_text, read_regular_text
from labctl.procedures.compiler import _Compiler, _File
from labctl.procedures.grammar import apply_cell_rules, parse_logging, parse_step_raw
from labctl.procedures.model import CompiledProcedure, Plan, PlannedStep
from labctl.procedures.parameters import parse_declarations, resolve
from labctl.procedures.substitute import cell_values
from labctl.stations.spec import StationSpec
from labctl.yamlio import LocatedDoc


class ProcedureContext:
    """What a Python procedure gets: the cell, the resolved parameters and step builders."""

    def __init__(
        self,
        *,
        cell: CellSpec,
        params: Mapping[str, Any],
        station: StationSpec | None,
        file: str,
        default_logging: LoggingPolicy | None = None,
    ):
        self.cell = cell
        self.params = dict(params)
        self.station = station
        self.file = file
        self.default_logging = default_logging or LoggingPolicy()

    def _caller_line(self) -> int | None:
        frame = inspect.currentframe()
        try:
            f = frame.f_back.f_back if frame and frame.f_back else None
            while f is not None:
                if Path(f.f_code.co_filename).resolve() == Path(self.file).resolve():
                    return f.f_lineno
                f = f.f_back
            return None
        finally:
            del frame

    def step(
        self,
        text: str,
        *,
        new_cycle: bool = False,
        log: str | None = None,
        current_limit_a: float | None = None,
    ) -> PlannedStep:
        """A step from the step grammar ('Charge at 1C until 3.65 V'); yield it to run it."""
        line = self._caller_line()
        logging = self.default_logging
        if log is not None:
            try:
                logging = parse_logging(log, default=logging, capacity_ah=self.cell.capacity_ah)
            except ValidationError as exc:
                raise ValidationError(
                    [
                        replace(
                            p, file=self.file, line=line, column=None, field="ctx.step(log=...)"
                        )
                        for p in exc.problems
                    ]
                ) from None
        step, issues = parse_step_raw(text, self.cell.capacity_ah, logging)
        if issues or step is None:
            raise ValidationError(
                [
                    Problem(
                        self.file,
                        line,
                        None,
                        "ctx.step",
                        f"{msg} (at character {off + 1} of {str(text).strip()!r})",
                    )
                    for off, msg in issues
                ]
            )
        if current_limit_a is not None:
            step = replace(step, current_limit_a=float(current_limit_a))
        step = apply_cell_rules(step, self.cell)
        if (
            current_limit_a is None
            and step.current_limit_a is not None
            and self.station is not None
        ):
            inst = self.station.instruments.get("cycler")
            top = inst.ranges.get("max_current_a") if inst is not None else None
            if top is not None and step.current_limit_a > top:
                step = replace(step, current_limit_a=float(top))
        step = replace(step, source=SourceRef(self.file, line, None, "python"))
        return PlannedStep(step, "python", new_cycle)

    def chamber(
        self,
        setpoint_c: float,
        *,
        ramp_c_per_min: float | None = None,
        tolerance_c: float = 1.0,
        stable_for_s: float = 0.0,
        timeout_s: float = 4 * 3600.0,
        on: str = "cell",
        wait: bool = True,
        new_cycle: bool = False,
    ) -> PlannedStep:
        """A chamber set-point step; yield it to run it."""
        text = f"Chamber to {setpoint_c:g} °C"
        step = ChamberStep(
            setpoint_c=float(setpoint_c),
            ramp_c_per_min=ramp_c_per_min,
            tolerance_c=tolerance_c,
            stable_for_s=stable_for_s,
            timeout_s=timeout_s,
            stabilise_on=on,
            wait=wait,
            text=text,
            source=SourceRef(self.file, self._caller_line(), None, "python"),
        )
        return PlannedStep(step, "python", new_cycle)


def _line_of(text: str, name: str) -> int | None:
    m = re.search(rf"^{name}\b", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _import(path: Path) -> Any:
    """Import the user's module from its path; problems become ValidationErrors naming the file."""
    file = str(path)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    mod_name = f"labctl_user_procedure_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ValidationError([Problem(file, None, None, "", "cannot import this file as Python")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # sys.exit() at import: not a way to end labctl
        sys.modules.pop(mod_name, None)
        raise ValidationError([Problem(file, None, None, "", f"the module called sys.exit("
                                       f"{exc.code!r}) while being imported; a procedure "
                                       "ends by returning from procedure(ctx)")]) from None
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise ValidationError(
            [Problem(file, exc.lineno, exc.offset, "", f"Python syntax error: {exc.msg}")]
        ) from None
    except Exception as exc:  # the user's module failed while importing: say where
        sys.modules.pop(mod_name, None)
        line = None
        for fs in traceback.extract_tb(exc.__traceback__):
            if Path(fs.filename).resolve() == path.resolve():
                line = fs.lineno
        raise ValidationError(
            [Problem(file, line, None, "", f"error while importing: {type(exc).__name__}: {exc}")]
        ) from None
    return module


def _no_exit(gen: Any, file: str) -> Plan:
    """The user's generator, with `sys.exit()` turned into a fault of the run.

    SystemExit is not an Exception: uncaught it left `labctl run` exiting 0 with the
    run `interrupted`, no reason and no tables. As a LabctlError the engine makes the
    outputs safe, records the reason, and the tables are written.
    """
    try:
        return (yield from gen)
    except SystemExit as exc:
        raise LabctlError(f"{file}: the procedure called sys.exit({exc.code!r}); a procedure "
                          "ends by returning from procedure(ctx)") from None


def load_python_procedure(
    path: str | Path,
    *,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
) -> CompiledProcedure:
    p = Path(path)
    file = str(path)
    try:
        text = read_regular_text(p)  # a FIFO or device is refused, never waited on
    except FileNotFoundError:
        from labctl.suggest import near_files

        raise ValidationError([Problem(file, None, None, "", "file not found" + near_files(p))]) from None
    except OSError as exc:
        raise ValidationError([Problem(file, None, None, "", f"cannot read file: "
                                       f"{os_error_text(exc)}")]) from None
    except UnicodeDecodeError:
        raise ValidationError([Problem(file, None, None, "", "not UTF-8 text")]) from None
    module = _import(p)
    problems: list[Problem] = []
    proc = getattr(module, "procedure", None)
    if proc is None or not callable(proc):
        problems.append(
            Problem(
                file,
                None,
                None,
                "procedure",
                "a Python procedure defines 'def procedure(ctx):', a generator that "
                "yields ctx.step(...)",
            )
        )
    elif not inspect.isgeneratorfunction(proc):
        problems.append(
            Problem(
                file,
                _line_of(text, "def procedure"),
                None,
                "procedure",
                "procedure(ctx) must be a generator: write 'result = yield ctx.step(\"...\")'",
            )
        )

    data: dict[str, Any] = {}
    marks: dict[tuple, tuple[int, int]] = {}
    for attr, key in (
        ("PARAMETERS", "parameters"),
        ("REQUIRES", "requires"),
        ("SAFETY", "safety"),
        ("NAME", "name"),
        ("DESCRIPTION", "description"),
    ):
        if hasattr(module, attr):
            data[key] = getattr(module, attr)
            line = _line_of(text, attr)
            if line is not None:
                marks[(key,)] = (line, 1)
    doc = LocatedDoc(data, file, marks, text)
    comp = _Compiler(cell, station, p.resolve().parent)
    decls = parse_declarations(doc, ("parameters",), data.get("parameters"), comp.problems)

    def report(name: str, message: str) -> None:
        line, col = doc.where(("parameters",))
        comp.problems.append(Problem(file, line, col, f"--param {name}", message))

    values = resolve(decls, dict(params or {}), report)
    f = _File(doc, p.resolve(), cell_values(cell), LoggingPolicy(), "")
    comp.requires(f, data.get("requires", ["cycler"]))
    if data.get("safety") is not None:
        comp.safety_section(f, data["safety"])
    comp.check_roles()
    name, description = data.get("name", p.stem), data.get("description", "")
    for key, val in (("name", name), ("description", description)):
        if not isinstance(val, str):
            problems.append(doc.problem((key,), f"{key.upper()} must be text"))
    problems.extend(comp.problems)
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))
    safety = comp.safety_limits()
    required = tuple(r for r in ROLES if r in comp.declared_roles)

    def make_plan() -> Plan:
        ctx = ProcedureContext(cell=cell, params=values, station=station, file=file)
        return _no_exit(proc(ctx), file)

    return CompiledProcedure(
        name=name,
        description=description,
        file=file,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        parameters=values,
        required_roles=required,
        safety=safety,
        make_plan=make_plan,
        extra={"format": "python"},
    )
