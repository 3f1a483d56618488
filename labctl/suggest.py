"""`did you mean ...?`: the nearest known names to a word the user mistyped."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


def nearest(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to `n` of `choices` closest to `word` (difflib's ratio, case-insensitive)."""
    choices = [str(c) for c in choices]
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), c)
    found = difflib.get_close_matches(str(word).lower(), list(by_lower), n=n, cutoff=cutoff)
    return [by_lower[f] for f in found]


def one_edit_apart(a: str, b: str) -> bool:
    """True when `a` becomes `b` by one insertion, deletion, substitution or swap of two
    neighbouring letters ('fro' -> 'for'): difflib's ratio misses short swapped words."""
    a, b = a.lower(), b.lower()
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """`"; did you mean 'x'?"` (or `'x' or 'y'`), or "" when nothing is near."""
    found = nearest(word, choices, n=n)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"


def near_files(path: str | Path) -> str:
    """`"; did you mean 'procedures/capacity.yaml'?"` for a missing file whose folder holds
    files with a close name (same folder as written), or ""."""
    p = Path(path)
    folder = p.parent
    try:
        names = [e.name for e in folder.iterdir()] if folder.is_dir() else []
    except OSError:
        return ""
    found = nearest(p.name, names, n=2, cutoff=0.7)
    if not found:
        return ""
    shown = [str(folder / f) if str(folder) != "." else f for f in found]
    return "; did you mean " + " or ".join(repr(s) for s in shown) + "?"
