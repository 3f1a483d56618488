"""`did you mean ...?`: the nearest known names to a word the user mistyped."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to `n` of `choices` closest to `word` (difflib's ratio, case-insensitive)."""
    choices = [str(c) for c in choices]
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), c)
    found = difflib.get_close_matches(str(word).lower(), list(by_lower), n=n, cutoff=cutoff)
    return [by_lower[f] for f in found]


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """`"; did you mean 'x'?"` (or `'x' or 'y'`), or "" when nothing is near."""
    found = nearest(word, choices, n=n)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"
