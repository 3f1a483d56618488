"""HOOK for `labctl plan` (issue 16): the duration estimate shown next to Start and the
remaining time on a tile.

When the `labctl.plan` package exists, `estimate(choice)` asks it for the
procedure's estimate; until then both functions say "no estimate" and the
pages show "-". The call is guarded: an estimate is advice, never a reason for
the console to fail.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def plan_available() -> bool:
    return importlib.util.find_spec("labctl.plan") is not None


def estimate(choice: Any) -> dict[str, Any] | None:
    """{"duration_s": ..., "text": ...} from labctl.plan for the chosen procedure, or None."""
    if not plan_available():
        return None  # HOOK: labctl.plan not on this branch yet
    try:
        from labctl import plan  # type: ignore[attr-defined]

        fn = getattr(plan, "estimate", None) or getattr(plan, "estimate_procedure", None)
        if fn is None:
            return None
        result = fn(choice.procedure, station=choice.station, cell=choice.cell,
                    params=choice.params)
    except Exception:
        return None
    duration = getattr(result, "duration_s", None)
    if duration is None and isinstance(result, dict):
        duration = result.get("duration_s")
    return {"duration_s": duration, "text": str(getattr(result, "text", "") or "")}


def remaining_estimator() -> Any:
    """(run meta, status.json) -> remaining seconds, or None while labctl.plan is absent."""
    return None  # HOOK: wire labctl.plan's per-step estimate here when it lands
