"""The step grammar: "Charge at 1C until 3.65 V, log every 10 s" -> ElectricalStep.

    <verb> [at <set-point>] [for <duration | charge>] [or] [until <condition> [or <condition>]...]
           [, log every <period> [or <delta>]...]

Verbs are Charge, Discharge, Hold and Rest (case-insensitive). The sign of a
current or power comes from the verb, never from the number. Words are matched
as whole words, so units never collide with the keywords. Errors carry the
0-based offset of the offending token so that callers can point at the column.
This module knows nothing about files; `compile.py` locates the text in YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from labctl.capabilities.steps import ElectricalStep, EndCondition, LoggingPolicy, Mode, Quantity
from labctl.cells.spec import CellSpec
from labctl.errors import Problem, ValidationError
from labctl.units import (
    C_RATE,
    CHARGE,
    CURRENT,
    POWER,
    TEMPERATURE,
    TIME,
    VOLTAGE,
    ParsedQuantity,
    UnitError,
    format_number,
    parse_quantity,
    unit_kind,
)

VERBS = ("charge", "discharge", "hold", "rest")
SAMPLE_STEPS = "'Charge at 1C until 3.65 V', 'Hold at 3.65 V until C/20', 'Rest for 1 hour'"
EXAMPLES = f"e.g. {SAMPLE_STEPS}"

_KEYWORD_RE = re.compile(r"\b(at|for|until|or)\b", re.IGNORECASE)
# ", log every 10 s" (the comma may be left out before "log every").
_LOG_RE = re.compile(r"(?:[,;]\s*log\b|\slog\s+every\b)", re.IGNORECASE)
_OP_RE = re.compile(r"\s*(<=|>=|=<|=>|<|>)?\s*")
_ITEM_SEP_RE = re.compile(r"\bor\b|\band\b|,", re.IGNORECASE)

_CURRENT_OR_POWER = "A, mA, C-rate like 1C or C/20 (or a power: W, mW, kW)"

# What an end condition may watch, and the kinds of quantity that say so.
_COND_KINDS = (VOLTAGE, CURRENT, C_RATE, CHARGE, TEMPERATURE, TIME)


_WORD_RE = re.compile(r"[^\W\d_]+")
# The words of the grammar a typo is most likely aimed at.
KEYWORDS = ("at", "for", "until", "or", "log", "every", *VERBS)


def typo_hint(text: str, first_only: bool = False) -> tuple[int, str] | None:
    """(offset, message) for the first word of `text` that is neither a unit nor a keyword
    but close to a keyword ('untill' -> 'until'), else None. With `first_only`, only the
    first word is looked at (where a keyword must stand)."""
    for k, m in enumerate(_WORD_RE.finditer(text)):
        if first_only and k > 0:
            break
        word = m.group(0)
        low = word.lower()
        if low in KEYWORDS or unit_kind(word) is not None or low in ("c", "e"):
            continue
        # Imported here, not above the loop: every valid step is checked too (with no
        # stray word), and it should not pay for difflib (~1 ms of `labctl run`).
        from labctl.suggest import nearest, one_edit_apart

        near = nearest(low, KEYWORDS, n=1, cutoff=0.75)
        if not near and len(low) >= 3:
            near = [k for k in KEYWORDS if len(k) >= 3 and one_edit_apart(low, k)][:1]
        if near:
            return m.start(), f"unknown word {word!r}; did you mean {near[0]!r}? ({EXAMPLES})"
    return None


@dataclass
class _Issues:
    """Problems found in one string: (0-based offset, message)."""

    items: list[tuple[int, str]] = field(default_factory=list)

    def add(self, offset: int, message: str) -> None:
        self.items.append((max(offset, 0), message))


@dataclass(frozen=True)
class _Segment:
    """One keyword of a step (at, for, until, or) and the text after it, with their offsets."""

    keyword: str  # at, for, until, or
    keyword_offset: int
    value: str  # stripped
    value_offset: int


def _quantity(
    issues: _Issues, text: str, offset: int, kinds: tuple[str, ...], **wording: str
) -> ParsedQuantity | None:
    try:
        return parse_quantity(text, kinds, **wording)
    except UnitError as exc:
        hint = typo_hint(text)  # "1C untill 4.2 V": the typo, not "unknown unit 'C untill...'"
        if hint is not None:
            issues.add(offset + hint[0], hint[1])
        else:
            issues.add(offset + exc.offset, exc.reason)
        return None


def _segments(main: str, start: int, issues: _Issues) -> list[_Segment]:
    """Split the text after the verb into keyword clauses."""
    hits = list(_KEYWORD_RE.finditer(main, start))
    stray = main[start : hits[0].start() if hits else len(main)]
    hint = typo_hint(stray, first_only=True)
    if hint is not None:
        issues.add(start + hint[0], hint[1])
    elif stray.strip():
        off = start + len(stray) - len(stray.lstrip())
        issues.add(
            off,
            f"unexpected {stray.strip()!r}; after the verb comes 'at <set-point>', "
            f"'for <duration>' or 'until <condition>' ({EXAMPLES})",
        )
    out = []
    for i, m in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(main)
        raw = main[m.end() : end]
        value_offset = m.end() + len(raw) - len(raw.lstrip())
        out.append(_Segment(m.group(1).lower(), m.start(), raw.strip(), value_offset))
    return out


def parse_logging_clause(
    text: str,
    offset: int,
    issues: _Issues,
    default: LoggingPolicy,
    capacity_ah: float | None,
) -> LoggingPolicy:
    """'every 10 s or 5 mV' (optionally starting with 'log') -> LoggingPolicy."""
    m = re.match(r"\s*(log\s+)?every\b", text, re.IGNORECASE)
    if not m:
        issues.add(
            offset + len(text) - len(text.lstrip()),
            "logging is written 'log every 10 s', 'every 1 s or 5 mV' or 'every 10 s or 50 mA'",
        )
        return default
    period: float | None = None
    delta_v: float | None = None
    delta_i: float | None = None
    pos = m.end()
    items: list[tuple[str, int]] = []
    for sep in _ITEM_SEP_RE.finditer(text, pos):
        items.append((text[pos : sep.start()], pos))
        pos = sep.end()
    items.append((text[pos:], pos))
    for raw, at in items:
        lead = at + len(raw) - len(raw.lstrip())
        if not raw.strip():
            issues.add(
                offset + lead, "missing value in the logging rule (e.g. 'every 10 s or 5 mV')"
            )
            continue
        q = _quantity(issues, raw, offset + at, (TIME, VOLTAGE, CURRENT, C_RATE))
        if q is None:
            continue
        at = lead
        if q.value <= 0:
            issues.add(offset + at, f"a logging interval must be greater than zero, got {q.text!r}")
            continue
        if q.kind == TIME:
            if period is not None:
                issues.add(offset + at, "only one logging period per rule")
            period = q.value
        elif q.kind == VOLTAGE:
            if delta_v is not None:
                issues.add(offset + at, "only one voltage change per logging rule")
            delta_v = q.value
        else:
            if delta_i is not None:
                issues.add(offset + at, "only one current change per logging rule")
            if q.kind == C_RATE and capacity_ah is None:
                issues.add(offset + at, "a C-rate needs the cell's capacity; use A or mA here")
                continue
            delta_i = q.to_si(capacity_ah)
    return LoggingPolicy(
        period_s=period if period is not None else default.period_s,
        delta_v=delta_v,
        delta_i=delta_i,
    )


def _to_problems(issues: _Issues, field_name: str) -> list[Problem]:
    return [Problem(None, None, off + 1, field_name, msg) for off, msg in issues.items]


def parse_logging(
    text: str, *, default: LoggingPolicy | None = None, capacity_ah: float | None = None
) -> LoggingPolicy:
    """Parse a `log:` value like 'every 10 s or 5 mV'; raises ValidationError."""
    issues = _Issues()
    if not isinstance(text, str):
        raise ValidationError(
            [Problem(None, None, None, "log", "logging must be text like 'every 10 s'")]
        )
    policy = parse_logging_clause(text, 0, issues, default or LoggingPolicy(), capacity_ah)
    if issues.items:
        raise ValidationError(_to_problems(issues, "log"))
    return policy


class _StepParser:
    def __init__(self, text: str, capacity_ah: float, default_logging: LoggingPolicy):
        self.text = text
        self.capacity_ah = capacity_ah
        self.default_logging = default_logging
        self.issues = _Issues()
        self.setpoint: ParsedQuantity | None = None
        self.duration_s: float | None = None
        self.conditions: list[EndCondition] = []
        self.verb = ""

    def fail(self, offset: int, message: str) -> None:
        self.issues.add(offset, message)

    def parse(self) -> ElectricalStep | None:
        text = self.text
        log_m = _LOG_RE.search(text)
        main = text[: log_m.start()] if log_m else text
        logging = self.default_logging
        if log_m:
            logging = parse_logging_clause(
                text[log_m.start() + 1 :],
                log_m.start() + 1,
                self.issues,
                self.default_logging,
                self.capacity_ah,
            )
        verb_m = re.match(r"\s*([^\s,;]+)", main)
        if not verb_m:
            self.fail(0, f"empty step; write a step like {SAMPLE_STEPS}")
            return None
        self.verb = verb_m.group(1).lower()
        if self.verb not in VERBS:
            from labctl.suggest import did_you_mean

            hint = did_you_mean(self.verb, [v.capitalize() for v in VERBS], n=1)
            self.fail(
                verb_m.start(1),
                f"unknown step {verb_m.group(1)!r}{hint} (a step starts with Charge, Discharge, "
                f"Hold or Rest; {EXAMPLES})",
            )
            return None
        segments = _segments(main, verb_m.end(), self.issues)
        self._walk(segments)
        return self._build(logging, verb_m.start(1))

    def _walk(self, segments: list[_Segment]) -> None:
        prev: str | None = None
        for i, seg in enumerate(segments):
            if seg.keyword == "at":
                if i != 0 or self.setpoint is not None:
                    self.fail(
                        seg.keyword_offset, "'at <set-point>' comes once, right after the verb"
                    )
                else:
                    self._setpoint(seg)
            elif seg.keyword == "for":
                self._for_value(seg)
            elif seg.keyword == "until":
                self._condition(seg.value, seg.value_offset)
            else:  # "or"
                if prev not in ("for", "until", "or"):
                    self.fail(seg.keyword_offset, "'or' must follow a 'for' or 'until' clause")
                elif not seg.value:
                    nxt = segments[i + 1].keyword if i + 1 < len(segments) else None
                    if nxt not in ("for", "until"):
                        self.fail(seg.keyword_offset, "missing condition after 'or'")
                elif self._looks_like_time(seg.value):
                    self._for_value(seg)
                else:
                    self._condition(seg.value, seg.value_offset)
            prev = seg.keyword

    @staticmethod
    def _looks_like_time(value: str) -> bool:
        try:
            return parse_quantity(value, TIME).kind == TIME
        except UnitError:
            return False

    def _setpoint(self, seg: _Segment) -> None:
        if self.verb == "rest":
            self.fail(seg.keyword_offset, "a Rest has no set-point; write 'Rest for 10 minutes'")
            return
        if self.verb == "hold":
            q = _quantity(self.issues, seg.value, seg.value_offset, (VOLTAGE,))
        else:  # a voltage is parsed too, to point a user who meant a Hold the right way
            q = _quantity(
                self.issues,
                seg.value,
                seg.value_offset,
                (CURRENT, C_RATE, POWER, VOLTAGE),
                what="a current",
                allowed=_CURRENT_OR_POWER,
            )
        if q is None:
            return
        if q.kind == VOLTAGE and self.verb != "hold":
            self.fail(
                seg.value_offset,
                f"a {self.verb.capitalize()} runs at a current or a power "
                "(A, mA, C-rate like 1C or "
                f"C/20, W, mW); to hold a voltage write 'Hold at {q.text} until C/20'",
            )
            return
        if not self._positive(q, seg.value_offset, "the set-point"):
            return
        self.setpoint = q

    def _positive(self, q: ParsedQuantity, offset: int, what: str) -> bool:
        if q.value <= 0 and what != "the set-point":
            self.fail(offset, f"{what} must be greater than zero, got {q.text!r}")
            return False
        if q.value < 0:
            self.fail(
                offset,
                f"{what} {q.text!r} must not carry a sign: the direction comes from the verb "
                "(Charge = into the cell, Discharge = out of it)",
            )
            return False
        if q.value == 0:
            self.fail(
                offset,
                f"{what} must be greater than zero, got {q.text!r} (use Rest for no current)",
            )
            return False
        return True

    def _for_value(self, seg: _Segment) -> None:
        q = _quantity(self.issues, seg.value, seg.value_offset, (TIME, CHARGE))
        if q is None or not self._positive(
            q, seg.value_offset, "a duration" if q.kind == TIME else "a charge"
        ):
            return
        if q.kind == TIME:
            if self.duration_s is not None:
                self.fail(seg.value_offset, "only one duration per step")
            self.duration_s = q.value
        else:
            self._charge_condition(q, ">=", seg.value_offset)

    def _charge_condition(self, q: ParsedQuantity, op: str, offset: int) -> None:
        if self.verb == "rest":
            self.fail(
                offset, "a Rest moves no charge; end it on a time, a voltage or a temperature"
            )
            return
        if op != ">=":
            self.fail(
                offset, "a charge condition means 'after this much charge has moved'; drop the '<'"
            )
            return
        self.conditions.append(EndCondition(Quantity.CHARGE, ">=", q.value, q.text))

    def _condition(self, raw: str, offset: int) -> None:
        op_m = _OP_RE.match(raw)
        assert op_m is not None  # the pattern matches the empty string
        explicit = {"=<": "<=", "=>": ">=", "<": "<=", ">": ">="}.get(
            op_m.group(1) or "", op_m.group(1)
        )
        body = raw[op_m.end() :]
        body_offset = offset + op_m.end()
        q = _quantity(self.issues, body, body_offset, _COND_KINDS)
        if q is None:
            return
        text = raw.strip()
        if q.kind == TIME:
            self.fail(offset, f"{q.text!r} is a time; write 'for {q.text}'")
            return
        if q.kind != TEMPERATURE and not self._positive(q, body_offset, "a condition"):
            return
        charge_like = self.verb == "charge"
        mode_is_cc = self.verb in ("charge", "discharge") and (
            self.setpoint is None or self.setpoint.kind != POWER
        )
        if q.kind == VOLTAGE:
            if self.verb == "hold":
                self.fail(
                    offset,
                    "a Hold keeps the voltage constant; end it on a current ('until C/20'), "
                    "a charge "
                    "('until 0.1 Ah') or a time ('for 1 hour')",
                )
                return
            natural = ">=" if charge_like else "<="
            if self.verb == "rest":
                if explicit is None:
                    self.fail(
                        offset,
                        f"a Rest can relax up or down; write 'until > {q.text}' "
                        f"or 'until < {q.text}'",
                    )
                    return
                natural = explicit
            elif explicit is not None and explicit != natural:
                word = "raises" if charge_like else "lowers"
                self.fail(
                    offset, f"a {self.verb.capitalize()} {word} the voltage; write 'until {q.text}'"
                )
                return
            self.conditions.append(EndCondition(Quantity.VOLTAGE, natural, q.value, text))
        elif q.kind in (CURRENT, C_RATE):
            if self.verb == "rest" or mode_is_cc:
                self.fail(
                    offset,
                    f"a constant-current {self.verb.capitalize()} keeps its current; a current "
                    "condition belongs to a Hold ('Hold at 3.65 V until C/20') or a power step",
                )
                return
            # A hold's current and a power charge's current fall as the voltage rises;
            # a power discharge draws more and more current as the voltage falls.
            natural = ">=" if self.verb == "discharge" else "<="
            self.conditions.append(
                EndCondition(Quantity.CURRENT, explicit or natural, q.to_si(self.capacity_ah), text)
            )
        elif q.kind == CHARGE:
            self._charge_condition(q, explicit or ">=", offset)
        else:  # temperature
            natural = "<=" if self.verb == "rest" else ">="
            self.conditions.append(
                EndCondition(Quantity.TEMPERATURE, explicit or natural, q.value, text)
            )

    def _build(self, logging: LoggingPolicy, verb_offset: int) -> ElectricalStep | None:
        has_end = self.duration_s is not None or bool(self.conditions)
        verb = self.verb
        if verb in ("charge", "discharge") and self.setpoint is None and not self.issues.items:
            self.fail(
                verb_offset,
                f"a {verb.capitalize()} needs a current or power: "
                f"'{verb.capitalize()} at 1C until ...' (A, mA, C-rate like 1C or C/20, W, mW)",
            )
        if verb == "hold" and self.setpoint is None and not self.issues.items:
            self.fail(verb_offset, "a Hold needs a voltage: 'Hold at 3.65 V until C/20'")
        if verb in ("hold", "rest") and not has_end and not self.issues.items:
            self.fail(
                verb_offset,
                f"a {verb.capitalize()} needs an end: 'for 10 minutes'"
                + (" or 'until C/20'" if verb == "hold" else " or 'until 25 °C'"),
            )
        if self.issues.items:
            return None
        sign = -1.0 if verb == "discharge" else 1.0
        sp = self.setpoint
        if verb == "rest":
            mode, value = Mode.REST, 0.0
        elif verb == "hold":
            assert sp is not None
            mode, value = Mode.VOLTAGE, sp.value
        else:
            assert sp is not None
            if sp.kind == POWER:
                mode, value = Mode.POWER, sign * sp.value
            else:
                mode, value = Mode.CURRENT, sign * sp.to_si(self.capacity_ah)
        return ElectricalStep(
            mode=mode,
            value=value,
            duration_s=self.duration_s,
            until=tuple(self.conditions),
            logging=logging,
            text=self.text.strip(),
        )


def parse_step_raw(
    text: str, capacity_ah: float, default_logging: LoggingPolicy | None = None
) -> tuple[ElectricalStep | None, list[tuple[int, str]]]:
    """The grammar alone: a step without the cell's implicit rules, or the problems found.

    Offsets are 0-based positions in `text.strip()` (which is the step's `text`).
    """
    if not isinstance(text, str):
        return None, [(0, f"a step must be text like {SAMPLE_STEPS}")]
    parser = _StepParser(text.strip(), capacity_ah, default_logging or LoggingPolicy())
    try:
        step = parser.parse()
    except RecursionError:  # pragma: no cover - the parser does not recurse
        return None, [(0, "step text too complex")]
    return step, parser.issues.items


def hold_current_limit_a(cell: CellSpec) -> float:
    """A CV hold may push current either way, so both cell currents bound it."""
    return min(cell.limits.max_charge_current_a, cell.limits.max_discharge_current_a)


def apply_cell_rules(step: ElectricalStep, cell: CellSpec) -> ElectricalStep:
    """The compile rules a lab relies on.

    Every charge (positive current, power or profile) ends at the cell's max
    voltage and every discharge at its min voltage, unless the step already ends
    at a tighter voltage. Holds and power steps get a current limit from the cell.
    """
    lim = cell.limits
    until = list(step.until)
    charging, discharging = _directions(step)
    if charging and not any(
        c.quantity is Quantity.VOLTAGE and c.op == ">=" and c.value <= lim.max_voltage_v
        for c in until
    ):
        until.append(
            EndCondition(
                Quantity.VOLTAGE,
                ">=",
                lim.max_voltage_v,
                f"cell limit {format_number(lim.max_voltage_v)} V",
            )
        )
    if discharging and not any(
        c.quantity is Quantity.VOLTAGE and c.op == "<=" and c.value >= lim.min_voltage_v
        for c in until
    ):
        until.append(
            EndCondition(
                Quantity.VOLTAGE,
                "<=",
                lim.min_voltage_v,
                f"cell limit {format_number(lim.min_voltage_v)} V",
            )
        )
    current_limit = step.current_limit_a
    if current_limit is None:
        if step.mode is Mode.VOLTAGE:
            current_limit = hold_current_limit_a(cell)
        elif step.mode is Mode.POWER:
            current_limit = (
                lim.max_charge_current_a if step.value > 0 else lim.max_discharge_current_a
            )
    return replace(step, until=tuple(until), current_limit_a=current_limit)


def _directions(step: ElectricalStep) -> tuple[bool, bool]:
    """(charges the cell, discharges the cell) for cut-off purposes."""
    if step.mode in (Mode.CURRENT, Mode.POWER):
        return step.value > 0, step.value < 0
    if step.mode in (Mode.CURRENT_PROFILE, Mode.POWER_PROFILE) and step.profile is not None:
        return any(v > 0 for v in step.profile.value), any(v < 0 for v in step.profile.value)
    return False, False


def parse_step(
    text: str, *, cell: CellSpec, default_logging: LoggingPolicy | None = None
) -> ElectricalStep:
    """Parse one step string into a leaf step with the cell's implicit limits applied.

    Raises ValidationError whose problems carry the 1-based column inside `text`.
    Limits (cell maximum voltage, instrument ranges) are checked by `check_step`.
    """
    step, issues = parse_step_raw(text, cell.capacity_ah, default_logging)
    if issues or step is None:
        raise ValidationError(
            [Problem(None, None, off + 1, "step", msg) for off, msg in issues]
            or [Problem(None, None, None, "step", "not a step")]
        )
    return apply_cell_rules(step, cell)
