"""Quantities as a technician reads them: a unit, and the precision the instrument has.

`labctl show` and the closing summary of `labctl run` print through here, so the same
number reads the same everywhere (`1.9243 Ah`, `99.999 %`, `7 h 10 min`); `--json`
keeps the full floats.
"""

from __future__ import annotations

import math
from typing import Any

# name suffix -> (format, unit); the first match wins, so longer suffixes come first.
_BY_SUFFIX = (
    ("_efficiency", "{:.3f}", "%"),   # a ratio, shown in percent
    ("_capacity_ah", "{:.4f}", "Ah"),
    ("_ah", "{:.4f}", "Ah"),
    ("_wh", "{:.4f}", "Wh"),
    ("_w", "{:.3f}", "W"),
    ("_v", "{:.4f}", "V"),
    ("_a", "{:.4f}", "A"),
    ("_temperature_c", "{:.1f}", "°C"),
    ("_c", "{:.1f}", "°C"),
    ("_ohm", "{:.4g}", "Ω"),
    ("_hz", "{:.4g}", "Hz"),
    ("_s_per_cm", "{:.3e}", "S/cm"),
    ("_mpa", "{:.2f}", "MPa"),
)

_MILLI = ("Ah", "Wh", "A", "W")  # below 0.1 of these, shown in milli-units


def format_hms(seconds: float) -> str:
    """`3:02:06`: a run's test time as the live views show it."""
    if not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_duration_words(seconds: float) -> str:
    """`42.0 s`, `5 min 3 s`, `7 h 10 min`, `3 d 4 h`: two units at most."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def format_quantity(name: str, value: Any) -> str:
    """`value` for the field `name` (SI unit in the name) with its unit and precision."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if name.endswith("_s") or name.endswith("_time_s"):
        return format_duration_words(float(value))
    for suffix, fmt, unit in _BY_SUFFIX:
        if name.endswith(suffix):
            if unit in _MILLI and 0 < abs(value) < 0.1:
                # coin cells, pellets: 4.977 mAh, not 0.0050 Ah (two digits left)
                return f"{1000.0 * value:.3f} m{unit}"
            shown = value * 100.0 if unit == "%" else value
            text = fmt.format(shown)
            if text.startswith("-") and float(text) == 0:  # -0.0: a rounding artefact
                text = text[1:]
            return f"{text} {unit}"
    if isinstance(value, int):
        return f"{value:d}"
    return f"{value:.6g}"


def label(name: str) -> str:
    """`charge_capacity_ah` -> `charge capacity`: the unit goes with the value instead."""
    words = name.split("_")
    units = {"ah", "wh", "w", "v", "a", "c", "s", "ohm", "hz", "mpa"}
    if name.endswith("_s_per_cm"):
        words = words[:-3]
    elif len(words) > 1 and words[-1] in units:
        words = words[:-1]
    return " ".join(words).replace("n ", "number of ", 1) if name.startswith("n_") else " ".join(words)
