"""A simulated instrument's noise generator in its saved state (journal snapshots).

numpy gives a PCG64 state as two 128-bit integers. JSON numbers that large are not
portable (JavaScript readers round them, orjson refuses them: each snapshot then went
through the slower json encoder, ~10 us of every simulated batch), so the snapshot
holds them as decimal strings; `restore` reads both forms (journals written before
this hold integers).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def snapshot(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state
    inner = state.get("state")
    if isinstance(inner, dict):
        state["state"] = {k: str(v) if type(v) is int else v for k, v in inner.items()}
    return state


def restore(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    inner = saved.get("state")
    if isinstance(inner, dict):
        saved = {**saved, "state": {k: int(v) if isinstance(v, str) else v
                                    for k, v in inner.items()}}
    rng.bit_generator.state = saved
