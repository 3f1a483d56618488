"""What simulated instruments' journal snapshots share: the noise generator's state and
the snapshot version check.

numpy gives a PCG64 state as two 128-bit integers. JSON numbers that large are not
portable (JavaScript readers round them, orjson refuses them: each snapshot then went
through the slower json encoder, ~10 us of every simulated batch), so the snapshot
holds them as decimal strings (the instruments' state version 2); `rng_decoded` reads
both forms (journals written before hold integers).
"""

from __future__ import annotations

from typing import Any


def rng_snapshot(rng: Any) -> dict[str, Any]:
    """The state of `rng`'s bit generator (numpy's PCG64 or sim/pcg64.py's: the same dict)."""
    state = rng.bit_generator.state
    inner = state.get("state")
    if isinstance(inner, dict):
        state["state"] = {k: str(v) if type(v) is int else v for k, v in inner.items()}
    return state


def rng_decoded(rng: Any, saved: Any) -> dict[str, Any]:
    """`saved` as the state `rng`'s bit generator takes; ValueError when it takes none
    (checked on a scratch generator: a bad snapshot changes nothing)."""
    try:
        inner = saved.get("state")
        if isinstance(inner, dict):
            saved = {**saved, "state": {k: int(v) if isinstance(v, str) else v
                                        for k, v in inner.items()}}
        type(rng.bit_generator)().state = saved
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"unusable noise generator state ({exc})") from None
    return saved


def check_version(version: object, newest: int, what: str) -> None:
    """ValueError for a snapshot from a newer labctl (its layout may differ)."""
    if not isinstance(version, int) or isinstance(version, bool) or version > newest:
        raise ValueError(f"{what} state version {version!r}: this labctl reads up to {newest}; "
                         "resume with the labctl that wrote the run")
