"""The installed distributions' metadata folders, found where importlib.metadata's path
finder looks (`*.dist-info` / `*.egg-info` at the top of each `sys.path` folder, in
`sys.path` and listdir order), without importing importlib.metadata (~10 ms, its email
parser) on every command. Callers fall back to importlib.metadata on `Unsure`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator


class Unsure(Exception):
    """Something only importlib.metadata can read: a zip or egg on `sys.path`, or another
    finder of distributions on `sys.meta_path` (e.g. the importlib_metadata backport)."""


def metadata_folders() -> Iterator[tuple[str, str]]:
    """(sys.path folder, dist-info or egg-info name), as importlib.metadata finds them."""
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        raise Unsure
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:
            if os.path.exists(folder):
                raise Unsure from None  # a zip file on the path: importlib.metadata looks inside
            continue  # nothing there (python311.zip, path hooks' names)
        if folder.lower().endswith(".egg"):
            raise Unsure
        for name in names:
            if name.lower().endswith((".dist-info", ".egg-info")):
                yield folder, name
