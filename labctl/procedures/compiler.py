"""YAML procedure files -> CompiledProcedure, with every problem located.

Compilation never stops at the first problem: each one is recorded as a
Problem (file, line, column, field, message naming what is allowed) and the
whole list is raised as one ValidationError at the end. Nothing read from a
file is evaluated: steps go through the step grammar, `{name}` is plain text
replacement and loop conditions have their own tiny grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labctl.capabilities import ROLES
from labctl.capabilities.steps import (
    ChamberStep,
    ElectricalStep,
    LeafStep,
    LoggingPolicy,
    Mode,
    SourceRef,
)
from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.hashes import sha256
from labctl.procedures.chamber_items import ChamberItems
from labctl.procedures.check import Locate, check_leaf
from labctl.procedures.conditions import ConditionError, parse_until
from labctl.procedures.grammar import apply_cell_rules, parse_step_raw
from labctl.procedures.includes import IncludeSteps
from labctl.procedures.model import CompiledProcedure
from labctl.procedures.parameters import parse_declarations, resolve
from labctl.procedures.safety_sections import SafetySections
from labctl.procedures.step_spec import StepSpec
from labctl.procedures.substitute import (
    TextMap,
    cell_values,
    format_display,
    format_value,
    substitute,
)
from labctl.procedures.tree import DEFAULT_MAX_ITERATIONS, Leaf, Node, Repeat, make_plan
from labctl.procedures.values import ProcFile, ValueReaders, type_name
from labctl.stations.spec import StationSpec
from labctl.units import (
    CURRENT,
    TIME,
)
from labctl.yamlio import LocatedDoc, format_path, load_file, loads

TOP_KEYS = (
    "name",
    "description",
    "parameters",
    "requires",
    "log",
    "safety",
    "steps",
    "max_duration",
    "abuse",
)
STEP_KEYS = ("step", "log", "current_limit")
REPEAT_KEYS = ("repeat", "until", "max", "cycle", "steps")
INCLUDE_KEYS = ("include", "with")
STEP_TYPES = ("step", "repeat", "chamber", "include")

_File = ProcFile  # the name python_proc and step_spec use


@dataclass
class _Compiler(IncludeSteps, ValueReaders, SafetySections, ChamberItems):
    """Compiles one procedure file against a cell and a station, collecting every problem."""

    cell: CellSpec
    station: StationSpec | None
    root: Path  # includes may not leave this directory tree
    problems: list[Problem] = field(default_factory=list)
    checks: list[tuple[LeafStep, Locate]] = field(default_factory=list)
    included: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    stack: list[Path] = field(default_factory=list)
    declared_roles: dict[str, Problem] = field(
        default_factory=dict
    )  # role -> where it was asked for
    safety: dict[str, float] = field(default_factory=dict)
    doc_cache: dict[Path, LocatedDoc] = field(default_factory=dict)
    plugin_steps: dict[str, Any] = field(default_factory=dict)  # keyword -> StepTypeInfo
    # An abuse procedure's permission: cell limits it may cross (None: not an abuse procedure).
    abuse_allow: tuple[str, ...] | None = None
    abuse_reason: str = ""

    def add(self, f: _File | LocatedDoc, path: tuple, message: str, offset: int = 0) -> None:
        doc = f.doc if isinstance(f, _File) else f
        self.problems.append(doc.problem(path, message, column_offset=offset))

    # -- files ---------------------------------------------------------------------------------
    def compile_doc(
        self,
        doc: LocatedDoc,
        resolved: Path,
        overrides: Mapping[str, Any],
        report: Callable[[str, str], None],
        inherited_logging: LoggingPolicy,
        prefix: str,
    ) -> tuple[tuple[Node, ...], dict[str, Any]]:
        data = doc.data
        if not isinstance(data, dict):
            self.add(
                doc,
                (),
                "a procedure file is a mapping with at least 'steps:' "
                f"(allowed keys: {', '.join(TOP_KEYS)})",
            )
            return (), {}
        for key in data:
            if key not in TOP_KEYS:
                self.add(doc, (key,), f"unknown key {key!r}; allowed: {', '.join(TOP_KEYS)}")
        decls = parse_declarations(doc, ("parameters",), data.get("parameters"), self.problems)
        values = resolve(decls, overrides, report)
        subst = {**cell_values(self.cell), **{k: format_value(v) for k, v in values.items()}}
        shown = {**cell_values(self.cell), **{k: format_display(v) for k, v in values.items()}}
        f = _File(doc, resolved, subst, inherited_logging, prefix, shown)
        self.requires(f, data.get("requires"))
        if data.get("log") is not None:
            f.logging = self.logging_value(f, ("log",), data["log"], inherited_logging)
        if "abuse" in data:
            self.abuse_section(f, data["abuse"])
        if data.get("safety") is not None:
            self.safety_section(f, data["safety"])
        if "steps" not in data:
            self.add(doc, (), "a procedure needs 'steps:' (a list of steps)")
            return (), values
        nodes = self.steps(f, ("steps",), data["steps"])
        return tuple(nodes), values

    def requires(self, f: _File, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.add(f, ("requires",), f"requires is a list of roles; allowed: {', '.join(ROLES)}")
            return
        for i, role in enumerate(value):
            if not isinstance(role, str) or role not in ROLES:
                self.add(f, ("requires", i), f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
                continue
            where = f.doc.problem(("requires", i), "")
            self.declared_roles.setdefault(role, where)

    # -- steps ---------------------------------------------------------------------------------
    def steps(self, f: _File, path: tuple, value: Any) -> list[Node]:
        if not isinstance(value, list) or not value:
            self.add(
                f,
                path,
                "steps must be a non-empty list of steps (e.g. '- Charge at 1C until 3.65 V')",
            )
            return []
        nodes: list[Node] = []
        for i, item in enumerate(value):
            nodes.extend(self.item(f, path + (i,), item))
        return nodes

    def item(self, f: _File, path: tuple, value: Any) -> list[Node]:
        self.count_item(f, path)
        if isinstance(value, str):
            leaf = self.electrical(f, path, value, None, None)
            return [leaf] if leaf else []
        if not isinstance(value, dict):
            self.add(
                f,
                path,
                f"a step is text like 'Rest for 1 hour' or a mapping with one of "
                f"{', '.join(STEP_TYPES)}; got {type_name(value)}",
            )
            return []
        known = STEP_TYPES + tuple(k for k in self.plugin_steps if k not in STEP_TYPES)
        kinds = [k for k in known if k in value]
        if len(kinds) != 1:
            what = "none" if not kinds else " and ".join(kinds)
            keys = ", ".join(repr(k) for k in value)
            self.add(
                f,
                path,
                f"unknown step ({keys}): a structured step has exactly one of "
                f"{', '.join(known)} (found {what})",
            )
            return []
        kind = kinds[0]
        if kind not in STEP_TYPES:
            return self.plugin_step(f, path, kind, value)
        allowed = {
            "step": STEP_KEYS,
            "repeat": REPEAT_KEYS,
            "chamber": ("chamber",),
            "include": INCLUDE_KEYS,
        }[kind]
        for key in value:
            if key not in allowed:
                self.add(
                    f,
                    path + (key,),
                    f"unknown key {key!r} in a {kind} step; allowed: {', '.join(allowed)}",
                )
        if kind == "step":
            return self.structured_step(f, path, value)
        if kind == "repeat":
            node = self.repeat(f, path, value)
            return [node] if node else []
        if kind == "chamber":
            leaf = self.chamber(
                f, path + ("chamber",), value["chamber"], f.prefix + format_path(path)
            )
            return [leaf] if leaf else []
        return self.include(f, path, value)

    def plugin_step(self, f: _File, path: tuple, keyword: str, value: dict) -> list[Node]:
        """A step type registered by a plugin: `- eis: {...}` (optionally with `name:`)."""
        for key in value:
            if key not in (keyword, "name"):
                self.add(f, path + (key,), f"unknown key {key!r} beside {keyword!r}; "
                                           f"put the step's settings under {keyword}:")
        spec = StepSpec(self, f, path + (keyword,), keyword, value[keyword])
        try:
            step = self.plugin_steps[keyword].compile(spec)
        except LabctlError as exc:
            spec.error(None, str(exc))
            return []
        if step is None or not spec.ok:
            if spec.ok:
                spec.error(None, f"the {keyword} step could not be compiled")
            return []
        col = spec.source().column
        self.checks.append((step, lambda off: col))
        return [Leaf(step, f.prefix + format_path(path))]

    def structured_step(self, f: _File, path: tuple, value: dict) -> list[Node]:
        logging = None
        if value.get("log") is not None:
            logging = self.logging_value(f, path + ("log",), value["log"], f.logging)
        limit = None
        if value.get("current_limit") is not None:
            limit = self.quantity(
                f, path + ("current_limit",), value["current_limit"], CURRENT, "current_limit"
            )
        text = value["step"]
        if not isinstance(text, str):
            self.add(
                f,
                path + ("step",),
                f"step must be text like 'Rest for 1 hour', got {type_name(text)}",
            )
            return []
        leaf = self.electrical(
            f, path + ("step",), text, logging, limit, plan_path=f.prefix + format_path(path)
        )
        return [leaf] if leaf else []

    def electrical(
        self,
        f: _File,
        path: tuple,
        text: str,
        logging: LoggingPolicy | None,
        current_limit: float | None,
        plan_path: str | None = None,
    ) -> Leaf | None:
        new, tmap, sub_issues = substitute(text, f.values)
        for off, msg in sub_issues:
            self.add(f, path, msg, off)
        lead = len(new) - len(new.lstrip())
        # Parse even when a placeholder is unknown, to report the step's other problems too
        # (but not the ones the unresolved placeholder itself causes).
        step, issues = parse_step_raw(new, self.cell.capacity_ah, logging or f.logging)
        for off, msg in issues:
            if not tmap.in_unresolved(lead + off):
                self.add(f, path, msg, tmap.original(lead + off))
        if step is None or sub_issues:
            return None
        if current_limit is not None:
            if step.mode not in (Mode.VOLTAGE, Mode.POWER):
                self.add(f, path, "current_limit applies to Hold and power steps only")
            step = replace(step, current_limit_a=current_limit)
        step = apply_cell_rules(step, self.rules_cell())
        step = self.clamp_to_instrument(step, explicit=current_limit is not None)
        if f.display_values is not None and f.display_values != f.values and "{" in text:
            shown = substitute(text, f.display_values)[0].strip()
            if shown != step.text:
                step = replace(step, text=shown)
        line, col = f.doc.where(path)
        step = replace(step, source=SourceRef(f.display, line, col, format_path(path)))
        self.checks.append((step, _locator(col, tmap, lead)))
        return Leaf(step, plan_path or f.prefix + format_path(path))

    def clamp_to_instrument(self, step: ElectricalStep, explicit: bool) -> ElectricalStep:
        """An implicit current limit never exceeds what the cycler can source."""
        if explicit or step.current_limit_a is None or self.station is None:
            return step
        inst = self.station.instruments.get("cycler")
        top = inst.ranges.get("max_current_a") if inst is not None else None
        if top is not None and step.current_limit_a > top:
            return replace(step, current_limit_a=float(top))
        return step

    def repeat(self, f: _File, path: tuple, value: dict) -> Repeat | None:
        start = len(self.problems)
        count = None
        if value.get("repeat") is not None:
            count = self.positive_int(f, path + ("repeat",), value["repeat"], "repeat count")
        until: tuple = ()
        if value.get("until") is not None:
            raw = value["until"]
            got = self.text_value(f, path + ("until",), raw, "until")
            if got is not None:
                text, tmap = got
                try:
                    until = parse_until(text)
                except ConditionError as exc:
                    self.add(f, path + ("until",), exc.reason, tmap.original(exc.offset))
        elif count is None and value.get("repeat") is None:
            self.add(
                f,
                path,
                "a repeat needs a count ('repeat: 3') and/or an until condition "
                "('until: discharge_capacity_ah < 80 % of first')",
            )
        cap = None
        if value.get("max") is not None:
            cap = self.positive_int(f, path + ("max",), value["max"], "max")
        cycle = value.get("cycle", True)
        if not isinstance(cycle, bool):
            self.add(f, path + ("cycle",), f"cycle must be true or false, got {cycle!r}")
            cycle = True
        body = self.steps(f, path + ("steps",), value.get("steps"))
        if len(self.problems) > start:
            return None
        if cap is None:
            cap = DEFAULT_MAX_ITERATIONS if count is None else count
        return Repeat(tuple(body), count, until, cap, cycle, f.prefix + format_path(path))

    def check_roles(self) -> None:
        """Roles asked for in `requires`; roles implied by steps are checked per step."""
        if self.station is None:
            return
        from labctl.procedures.check import station_label

        bound = ", ".join(sorted(self.station.instruments)) or "nothing"
        for role, where in self.declared_roles.items():
            if not self.station.has_role(role):
                self.problems.append(
                    replace(
                        where,
                        message=f"this procedure requires a {role}, and "
                        f"{station_label(self.station)} "
                        f"binds none (it binds: {bound})",
                    )
                )


def _sorted(problems: list[Problem], main_file: str) -> list[Problem]:
    """Unique problems in reading order: the main file first, then by line and column."""
    order = {main_file: 0}
    unique = list(dict.fromkeys(problems))
    return sorted(
        unique,
        key=lambda p: (order.setdefault(p.file or "", len(order)), p.line or 0, p.column or 0),
    )




def _locator(col: int | None, tmap: TextMap, lead: int) -> Locate:
    def locate(offset: int) -> int | None:
        return None if col is None else col + tmap.original(lead + offset)

    return locate






def _inferred_roles(nodes: tuple[Node, ...]) -> set[str]:
    from labctl.procedures.tree import leaves

    roles = set()
    for leaf in leaves(nodes):
        if isinstance(leaf.step, ChamberStep):
            roles.add("chamber")
        elif isinstance(leaf.step, ElectricalStep):
            roles.add("cycler")
        else:
            roles.update(getattr(leaf.step, "roles", ()))
    return roles


def plugin_step_types(station: StationSpec | None) -> dict[str, Any]:
    """Step types that plugins registered with a `compile` function, by keyword."""
    from labctl.plugins import build_registry

    registry = build_registry(station.plugin_files if station is not None else ())
    infos = (r.info for r in registry.items.get("step_type", {}).values())
    return {info.keyword: info for info in infos if info.compile is not None}


def compile_document(
    doc: LocatedDoc,
    *,
    path: Path,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
) -> CompiledProcedure:
    """Compile a loaded YAML procedure; raises ValidationError listing every problem."""
    resolved = path.resolve()
    comp = _Compiler(cell, station, resolved.parent)
    comp.plugin_steps = plugin_step_types(station)
    comp.stack.append(resolved)
    data = doc.data if isinstance(doc.data, dict) else {}
    params_raw = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}

    def report(name: str, message: str) -> None:
        key = ("parameters", name) if name in params_raw else ("parameters",)
        line, col = doc.where(key) if params_raw else (None, None)
        comp.problems.append(Problem(doc.file, line, col, f"--param {name}", message))

    nodes, values = comp.compile_doc(doc, resolved, dict(params or {}), report, LoggingPolicy(), "")
    if isinstance(doc.data, dict) and not nodes and "steps" in doc.data and not comp.problems:
        comp.add(doc, ("steps",), "the procedure has no steps")
    roles = _inferred_roles(nodes)
    comp.check_roles()
    comp.check_abuse(doc)
    safety = comp.safety_limits()
    if (
        safety.min_voltage_v >= safety.max_voltage_v
        or safety.min_temperature_c >= safety.max_temperature_c
    ):
        comp.add(doc, ("safety",), "safety: a min limit is not below its max limit")
    for step, locate in comp.checks:
        comp.problems.extend(
            check_leaf(step, cell=cell, station=station, safety=safety, locate=locate)
        )
    max_duration = None
    if isinstance(doc.data, dict) and doc.data.get("max_duration") is not None:
        f = _File(doc, resolved, cell_values(cell), LoggingPolicy(), "")
        max_duration = comp.quantity(
            f, ("max_duration",), doc.data["max_duration"], TIME, "max_duration"
        )
        if max_duration is not None and max_duration <= 0:
            comp.add(doc, ("max_duration",), "must be greater than zero")
    name = data.get("name", path.stem)
    description = data.get("description", "")
    for key, val in (("name", name), ("description", description)):
        if not isinstance(val, str):
            comp.add(doc, (key,), f"{key} must be text")
    if comp.problems:
        raise ValidationError(_sorted(comp.problems, doc.file))

    digest = sha256(doc.text.encode("utf-8"))
    for text in comp.texts:
        digest.update(b"\0")
        digest.update(text.encode("utf-8"))
    required = tuple(r for r in ROLES if r in roles or r in comp.declared_roles)
    frozen_nodes = nodes
    return CompiledProcedure(
        name=str(name),
        description=str(description),
        file=doc.file,
        text=doc.text,
        sha256=digest.hexdigest(),
        parameters=values,
        required_roles=required,
        safety=safety,
        make_plan=lambda: make_plan(frozen_nodes),
        included_files=tuple(comp.included),
        max_duration_s=max_duration,
        # Included files' texts, so that a run can keep a copy of exactly what ran.
        extra={
            "format": "yaml",
            "tree": frozen_nodes,  # for `labctl plan`, which walks it itself
            "included_texts": dict(zip(comp.included, comp.texts, strict=True)),
            **({"abuse": {"allow": list(comp.abuse_allow), "reason": comp.abuse_reason}}
               if comp.abuse_allow is not None else {}),
        },
    )


def load_yaml_procedure(
    path: str | Path,
    *,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
) -> CompiledProcedure:
    return compile_document(
        load_file(path), path=Path(path), cell=cell, station=station, params=params
    )


def loads_procedure(
    text: str,
    *,
    cell: CellSpec,
    station: StationSpec | None = None,
    params: Mapping[str, str] | None = None,
    file: str = "<string>",
) -> CompiledProcedure:
    """Compile procedure text (includes resolve relative to `file`'s directory)."""
    return compile_document(
        loads(text, file), path=Path(file), cell=cell, station=station, params=params
    )
