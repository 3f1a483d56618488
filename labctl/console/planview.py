"""The plan next to Start, as text for the browser.

`labctl plan --json` and the Check's rough estimate hold numbers in SI units; this
module turns them into what the Start form shows: human durations ("30.0 days"),
°C with one decimal, V and A with four significant digits, and sentences that say
where things are shown on the page (the command line's "labctl plan shows them"
means nothing in a browser). Pure functions: no I/O, no plan is made here.
"""

from __future__ import annotations

import math
import re
from typing import Any

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# Python's float formatting ("2e+12", "3.17e+04", "1e-09"): a sign after the e, and
# not inside a path, a run id or a value the user typed ("lfp-1e5", "2e3")
_E_NOTATION = re.compile(r"(?<![\w./=-])(\d+(?:\.\d+)?)e([+-])0*(\d+)\b")


def readable(text: str) -> str:
    """Numbers in e-notation written for people: "2e+12 samples" -> "2 × 10¹² samples"."""
    def power(m: re.Match) -> str:
        exponent = ("-" if m.group(2) == "-" else "") + m.group(3)
        return f"{m.group(1)} × 10{exponent.translate(_SUPERSCRIPT)}"

    return _E_NOTATION.sub(power, text)


def human_duration(seconds: float | None) -> str:
    """labctl plan's durations ("3 h 20 min", "30.0 days"), e-notation made readable."""
    from labctl.plan.report import human_duration as cli_duration

    if seconds is None:
        return "-"
    return readable(cli_duration(float(seconds)))


def human_bytes(n: float | None) -> str:
    from labctl.plan.report import human_bytes as cli_bytes

    return "-" if n is None else cli_bytes(float(n))


def count(n: float | None) -> str:
    """1,665,924 samples; 2 × 10¹² when too many to write out."""
    if n is None or not math.isfinite(n):
        return "-"
    return f"{n:,.0f}" if n < 1e12 else readable(f"{n:.3g}")


def quantity(value: float | None, unit: str) -> str:
    """A limit or a reading: °C with one decimal, V and A with four significant digits."""
    if value is None or not math.isfinite(value):
        return "-"
    value += 0.0  # no "-0"
    if unit == "°C":
        return f"{value:.1f} °C"
    return f"{value:.4g} {unit}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def rough_line(est: dict[str, Any]) -> str:
    """The Check's estimate (validate's quick plan, at most CHECK_BUDGET_S of planning),
    labelled as rough: the full plan replaces it when ready."""
    if est.get("status") == "unplanned":
        text = "No estimate: the cell has no model to simulate (the plan below says why)"
        if est.get("duration_s"):
            text += f"; at least {human_duration(est['duration_s'])} (its timed rests alone)"
        return text
    more = "more than " if est.get("status") == "truncated" else ""
    text = (f"Rough estimate: {more}{human_duration(est.get('duration_s'))}, "
            f"{more}{count(est.get('n_samples'))} samples, "
            f"{more}{human_bytes(est.get('disk_bytes'))} on disk")
    if est.get("status") == "truncated":
        from labctl.plan import CHECK_BUDGET_S

        text += f" (the quick plan stopped after {CHECK_BUDGET_S:g} s)"
    if est.get("approximate"):
        text += " (approximate)"
    # a quick plan that stopped early names why among its warnings: said above already
    n = len([w for w in est.get("warnings") or [] if w != est.get("reason")])
    if n:
        text += f"; {_plural(n, 'warning')}, listed with the full plan"
    return text


def outcome(plan: dict[str, Any]) -> tuple[str, str]:
    """How the planned run ends, in words, and a class for its colour (ok, warn, bad)."""
    status, reason = plan.get("status"), readable(str(plan.get("reason") or ""))
    n = len(plan.get("warnings") or [])
    if plan.get("refused"):  # past a ceiling: validate and run refuse it, however it ends
        return f"refused by labctl validate and run: {readable(str(plan['refused']))}", "bad"
    if status == "completed":
        if n:
            return f"completed, with {_plural(n, 'warning')} (below)", "warn"
        return "completed, no warnings", "ok"
    if status == "truncated":
        why = reason if reason.startswith("planning stopped") else \
            f"planning stopped early: {reason}"
        return f"not known ({why})", "warn"
    if status == "refused":
        return f"refused: {reason}", "bad"
    return f"{status}: {reason}", "bad"


def _ends(end_reasons: dict[str, Any], runs: float) -> str:
    """"reached 3.65 V", or each reason with how often when a step ends in several ways."""
    names = [(k.partition(": ")[2] or k, v) for k, v in (end_reasons or {}).items()]
    if len(names) == 1:
        return names[0][0]
    return "; ".join(f"{name} ({count(v)} of {count(runs)})" for name, v in names)


def _step(s: dict[str, Any]) -> dict[str, Any]:
    def ah(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    return {"path": s.get("path", ""), "text": s.get("text", ""),
            "depth": str(s.get("path", "")).count("."),
            "runs": count(s.get("count")), "duration": human_duration(s.get("duration_s")),
            "ends": readable(_ends(s.get("end_reasons") or {}, s.get("count") or 0)),
            "ah_in": ah(s.get("charge_capacity_ah")), "ah_out": ah(s.get("discharge_capacity_ah")),
            "max_temperature": quantity(s.get("max_temperature_c"), "°C")}


def _where(m: dict[str, Any]) -> str:
    iteration = m.get("iteration") or []
    if not iteration:
        return str(m.get("path", ""))
    word = "iteration" if len(iteration) == 1 else "iterations"
    return f"{m.get('path', '')}, {word} {', '.join(f'{i:,}' for i in iteration)}"


def _margin(name: str, m: dict[str, Any]) -> dict[str, Any]:
    unit = m.get("unit", "")
    never = name.endswith("_current") and m.get("value") == 0
    return {"name": name, "label": name.replace("_", " "), "limit": quantity(m.get("limit"), unit),
            "closest": quantity(m.get("value"), unit),
            "margin": quantity(m.get("margin"), unit) + (" (reached)" if m.get("reached") else ""),
            "reached": bool(m.get("reached")),
            "text": "never flows" if never else str(m.get("text", "")),
            "path": "" if never else _where(m),
            "at": "" if never else human_duration(m.get("test_time_s"))}


def plan_view(plan: dict[str, Any]) -> dict[str, Any]:
    """What the Start form shows of `labctl plan --json`: a summary beside Start, then the
    steps folded per loop (with their place in the file) and the margins to each limit.

    A plan that stopped early has no expected end, only "not known" and a lower bound."""
    status = plan.get("status")
    stopped = status in ("truncated", "unplanned")
    approx = bool(plan.get("approximate"))
    duration = plan.get("run_duration_s")
    text, tone = outcome(plan)
    end_note = ""
    expected_end = None if stopped else plan.get("expected_end")
    if stopped:
        end_note = "not known: planning stopped early"
    elif expected_end is None:
        end_note = f"none in the calendar ({human_duration(duration)} from now)"
    needs = plan.get("duration_s")
    cut = plan.get("max_duration_s") is not None and needs is not None and duration is not None \
        and needs > duration
    summary = {
        "duration": ("more than " if stopped else "≈ " if approx else "")
        + human_duration(duration),
        "duration_note": (f"the procedure needs {human_duration(needs)}; its max_duration "
                          "stops it first") if cut else (
            "approximate: long loops counted, not simulated" if approx else ""),
        "expected_end": expected_end, "end_note": end_note, "end_approximate": approx,
        "outcome": text, "tone": tone,
        "max_temperature": quantity(plan.get("max_temperature_c"), "°C"),
        "data": (f"{'more than ' if stopped else ''}{count(plan.get('run_samples'))} samples, "
                 f"{human_bytes(plan.get('run_disk_bytes'))} on disk"),
        "n_warnings": len(plan.get("warnings") or []),
    }
    return {
        "status": status, "summary": summary,
        "warnings": [readable(str(w)) for w in plan.get("warnings") or []],
        "notes": [readable(str(n)) for n in plan.get("notes") or []],
        "steps": [_step(s) for s in plan.get("steps") or []],
        "margins": [_margin(k, m) for k, m in (plan.get("margins") or {}).items()],
        "planning_wall_s": plan.get("planning_wall_s"),
    }
