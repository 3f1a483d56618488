"""Chamber items in procedure files: `- chamber: {setpoint_c: 25, stable_for: 30 min}`.

Split from the compiler (one concern); mixed into it.
"""

from __future__ import annotations

import re
from typing import Any

from labctl.capabilities.steps import ChamberStep, SourceRef
from labctl.procedures.tree import Leaf
from labctl.procedures.values import ProcFile
from labctl.units import TEMPERATURE, TIME
from labctl.yamlio import LocatedDoc, format_path

CHAMBER_KEYS = (
    "setpoint_c",
    "ramp_c_per_min",
    "tolerance_c",
    "stable_for",
    "timeout",
    "on",
    "stabilise_on",
    "wait",
    "log",
    "if_busy",
)
CHAMBER_IF_BUSY = ("wait", "reject")


class ChamberItems:
    """Mixed into the compiler: a chamber item -> a ChamberStep leaf."""

    def chamber(self, f: ProcFile, path: tuple, value: Any, plan_path: str) -> Leaf | None:
        if not isinstance(value, dict):
            self.add(
                f,
                path,
                "chamber is a mapping like {setpoint_c: 25, stable_for: 30 min}; "
                f"allowed keys: {', '.join(CHAMBER_KEYS)}",
            )
            return None
        start = len(self.problems)
        value = _unbool_on_key(f.doc, path, value)
        for key in value:
            if key not in CHAMBER_KEYS:
                self.add(
                    f,
                    path + (key,),
                    f"unknown key {key!r} in a chamber step; allowed: {', '.join(CHAMBER_KEYS)}",
                )
        if value.get("setpoint_c") is None:
            self.add(f, path, "a chamber step needs setpoint_c (°C)")
            return None
        setpoint = self.quantity(
            f, path + ("setpoint_c",), value["setpoint_c"], TEMPERATURE, "setpoint_c"
        )
        kwargs: dict[str, Any] = {}
        for key, kind, what, field_name in (
            ("ramp_c_per_min", None, "ramp_c_per_min", "ramp_c_per_min"),
            ("tolerance_c", None, "tolerance_c", "tolerance_c"),
            ("stable_for", TIME, "stable_for", "stable_for_s"),
            ("timeout", TIME, "timeout", "timeout_s"),
        ):
            if value.get(key) is None:
                continue
            if kind is None:
                x = self.quantity(f, path + (key,), value[key], TEMPERATURE, what)
            else:
                x = self.quantity(f, path + (key,), value[key], TIME, what)
            if x is None:
                continue
            zero_ok = key == "stable_for"
            if x < 0 or (x == 0 and not zero_ok):
                self.add(
                    f,
                    path + (key,),
                    f"{what} must be {'zero or ' if zero_ok else ''}greater than zero, got {x:g}",
                )
                continue
            kwargs[field_name] = x
        on = value.get("on", value.get("stabilise_on", "cell"))
        if on not in ("cell", "chamber"):
            self.add(f, path + ("on",), f"'on' must be cell or chamber, got {on!r}")
        wait = value.get("wait", True)
        if not isinstance(wait, bool):
            self.add(f, path + ("wait",), f"wait must be true or false, got {wait!r}")
        if_busy = value.get("if_busy", "wait")
        if if_busy not in CHAMBER_IF_BUSY:
            self.add(f, path + ("if_busy",), f"if_busy must be one of {', '.join(CHAMBER_IF_BUSY)} "
                                             f"(when another channel holds a shared chamber), "
                                             f"got {if_busy!r}")
        if value.get("log") is not None:
            kwargs["logging"] = self.logging_value(f, path + ("log",), value["log"], f.logging)
        if len(self.problems) > start or setpoint is None:
            return None
        # Most chamber problems are about the set-point: point at it.
        line, col = f.doc.where(path + ("setpoint_c",))
        text = _chamber_text(setpoint, kwargs, on, wait)
        step = ChamberStep(
            setpoint_c=setpoint,
            stabilise_on=on,
            wait=wait,
            if_busy=if_busy,
            text=text,
            source=SourceRef(f.display, line, col, format_path(path)),
            **kwargs,
        )
        self.checks.append((step, lambda off: col))
        return Leaf(step, plan_path)


def _unbool_on_key(doc: LocatedDoc, path: tuple, value: dict) -> dict:
    """YAML 1.1 reads an unquoted `on:` key as true; give it back its name."""
    if "True" not in value or "on" in value:
        return value
    line, col = doc.where(path + ("True",))
    lines = doc.text.splitlines()
    if line is None or col is None or line > len(lines):
        return value
    # The mark points at the value (or at the key for non-scalar values).
    before = lines[line - 1][: col - 1]
    at = lines[line - 1][col - 1 :]
    if not (re.search(r"\bon\s*:\s*$", before, re.IGNORECASE) or at[:2].lower() == "on"):
        return value
    out = {("on" if k == "True" else k): v for k, v in value.items()}
    doc.marks[path + ("on",)] = doc.marks.get(path + ("True",), (line, col))
    return out


def _chamber_text(setpoint: float, kw: dict[str, Any], on: str, wait: bool) -> str:
    parts = [f"Chamber to {setpoint:g} °C"]
    if "ramp_c_per_min" in kw:
        parts.append(f"ramp {kw['ramp_c_per_min']:g} °C/min")
    if not wait:
        parts.append("no wait")
    else:
        tol = kw.get("tolerance_c", ChamberStep.__dataclass_fields__["tolerance_c"].default)
        stable = kw.get("stable_for_s", 0.0)
        parts.append(f"stable within {tol:g} °C for {stable:g} s on the {on}")
        if "timeout_s" in kw:
            parts.append(f"timeout {kw['timeout_s']:g} s")
    return ", ".join(parts)
