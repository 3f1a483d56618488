"""Safe YAML loading that remembers where every value came from.

PyYAML's safe loader already refuses tags that would build Python objects, but
it forgets line numbers once the data is built. We compose the node tree
ourselves (no object construction beyond plain scalars), convert it to plain
Python data and keep a map from each value's path to its line and column, so
every later validation message can name `file:line:column`. The PyYAML side is
`labctl/yaml_parse.py`, imported only when a text is parsed: a `labctl` process
finds the texts it read before in its parse cache (`labctl/yaml_cache.py`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import Problem, ValidationError

PathKey = tuple[str | int, ...]

# Guards against hostile files: alias bombs and absurd nesting.
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_BYTES = 5_000_000



def format_path(path: Iterable[str | int]) -> str:
    """("steps", 2, "until") -> "steps[2].until"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class LocatedDoc:
    """Plain data loaded from YAML plus where each part of it stood."""

    data: Any
    file: str
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    def where(self, path: Iterable[str | int]) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the value at `path`, or of its nearest parent."""
        key = tuple(path)
        while True:
            if key in self.marks:
                return self.marks[key]
            if not key:
                return (None, None)
            key = key[:-1]

    def problem(self, path: Iterable[str | int], message: str, column_offset: int = 0) -> Problem:
        path = tuple(path)
        line, col = self.where(path)
        if col is not None:
            col += column_offset
        return Problem(self.file, line, col, format_path(path), message)


def loads(text: str, file: str = "<string>") -> LocatedDoc:
    """Parse YAML text safely into plain data with locations; raises ValidationError."""
    if len(text) > MAX_BYTES:
        raise ValidationError([Problem(file, None, None, "", f"file larger than {MAX_BYTES} bytes")])
    # In a `labctl` process, texts parsed before, by content (yaml_cache.install()).
    cache = getattr(sys.modules.get("labctl.yaml_cache"), "ACTIVE", None)
    if cache is not None:
        hit = cache.get(text)
        if hit is not None:
            return LocatedDoc(hit[0], file, hit[1], text)
    from labctl.yaml_parse import parse

    doc = parse(text, file)
    if cache is not None:
        cache.put(text, doc.data, doc.marks)
    return doc


def load_file(path: str | Path) -> LocatedDoc:
    """Read and parse a YAML file; a missing or unreadable file is a ValidationError."""
    from labctl.fileio import os_error_text, read_regular_text

    try:
        text = read_regular_text(Path(path), MAX_BYTES)
    except FileNotFoundError:
        from labctl.suggest import near_files

        raise ValidationError([Problem(str(path), None, None, "",
                                       "file not found" + near_files(Path(path)))]) from None
    except OSError as exc:
        raise ValidationError([Problem(str(path), None, None, "", f"cannot read file: "
                                       f"{os_error_text(exc)}")]) from None
    except UnicodeDecodeError:
        raise ValidationError([Problem(str(path), None, None, "", "not UTF-8 text")]) from None
    return loads(text, str(path))
