"""Safe YAML loading that remembers where every value came from.

PyYAML's safe loader already refuses tags that would build Python objects, but
it forgets line numbers once the data is built. We compose the node tree
ourselves (no object construction beyond plain scalars), convert it to plain
Python data and keep a map from each value's path to its line and column, so
every later validation message can name `file:line:column`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl.errors import Problem, ValidationError

PathKey = tuple[str | int, ...]

# Guards against hostile files: alias bombs and absurd nesting.
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_BYTES = 5_000_000

_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


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


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.marks: dict[PathKey, tuple[int, int]] = {}
        self.nodes = 0
        self.scalar_loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, path: PathKey, message: str) -> None:
        raise ValidationError(
            [
                Problem(
                    self.file,
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    format_path(path),
                    message,
                )
            ]
        )

    def convert(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(node, path, f"document too large (more than {MAX_NODES} values after aliases)")
        if depth > MAX_DEPTH:
            self.fail(node, path, f"nesting deeper than {MAX_DEPTH} levels is not allowed")
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                self.fail(node, path, f"YAML tag {node.tag!r} is not allowed; only plain maps, lists and scalars")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.fail(key_node, path, "YAML merge keys ('<<') are not supported; write the fields out")
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(key_node, path, "mapping keys must be plain text")
                # Keys are names: keep their text (YAML 1.1 would read `on:` as True).
                self.scalar(key_node, path)  # still refuses a tagged key
                key = key_node.value
                if key in out:
                    self.fail(key_node, path + (key,), f"duplicate key {key!r}")
                self.marks[path + (key,)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.convert(value_node, path + (key,), depth + 1)
                # Point at the value itself for scalar values (more precise columns).
                if isinstance(value_node, yaml.ScalarNode):
                    self.marks[path + (key,)] = (
                        value_node.start_mark.line + 1,
                        value_node.start_mark.column + 1 + _quote_offset(value_node),
                    )
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.fail(node, path, f"YAML tag {node.tag!r} is not allowed; only plain maps, lists and scalars")
            items = []
            for i, child in enumerate(node.value):
                items.append(self.convert(child, path + (i,), depth + 1))
                if isinstance(child, yaml.ScalarNode):
                    self.marks[path + (i,)] = (
                        child.start_mark.line + 1,
                        child.start_mark.column + 1 + _quote_offset(child),
                    )
            return items
        return self.scalar(node, path)

    def scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # dates stay text (calibration_due: 2027-06-30)
        if node.tag not in _SAFE_SCALAR_TAGS:
            self.fail(
                node,
                path,
                f"YAML tag {node.tag!r} is not allowed; labctl files hold only text, numbers, "
                "true/false and null (nothing is ever turned into a Python object)",
            )
        try:
            return self.scalar_loader.construct_object(node)
        except yaml.YAMLError as exc:  # e.g. a malformed number with an explicit tag
            self.fail(node, path, f"bad value: {exc}")
        return None


def _quote_offset(node: yaml.ScalarNode) -> int:
    """Column offset from the node start to its text (skip an opening quote)."""
    return 1 if node.style in ("'", '"') else 0


def loads(text: str, file: str = "<string>") -> LocatedDoc:
    """Parse YAML text safely into plain data with locations; raises ValidationError."""
    if len(text) > MAX_BYTES:
        raise ValidationError([Problem(file, None, None, "", f"file larger than {MAX_BYTES} bytes")])
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        msg = exc.problem or str(exc)
        if exc.context:
            msg = f"{exc.context}, {msg}"
        raise ValidationError([Problem(file, line, col, "", f"YAML syntax: {msg}")]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem(file, None, None, "", f"YAML syntax: {exc}")]) from None
    except RecursionError:
        raise ValidationError([Problem(file, None, None, "", "YAML nesting too deep")]) from None
    if node is None:
        return LocatedDoc(None, file, {(): (1, 1)}, text)
    conv = _Converter(file)
    try:
        data = conv.convert(node, (), 0)
    except RecursionError:
        raise ValidationError([Problem(file, None, None, "", "YAML nesting too deep")]) from None
    return LocatedDoc(data, file, conv.marks, text)


# LibYAML's parser (PyYAML's C extension, when built with it) composes the same node tree
# ~15x faster; a `labctl run` reads three files (and the benchmark's in-process run
# reads them every time). Not for every text:
# - its composer recurses in C, so only where nesting is plainly shallow: few flow
#   brackets, and short enough that block nesting (one more indented line per level)
#   stays in the hundreds;
# - it accepts tabs and comments right after a block scalar's indicator where PyYAML
#   refuses them, treats BOMs, Unicode line breaks and the bare "!" tag differently, and
#   places empty nodes after "?" or "---" elsewhere (all found by a differential fuzz
#   against the pure-Python parser): texts with any of those keep the pure-Python parser,
#   so every file reads (and every error points) as before.
# Any text LibYAML refuses is parsed again in Python, for PyYAML's own message and mark.
_C_LOADER = getattr(yaml, "CSafeLoader", None)
_C_MAX_BYTES = 200_000
_C_MAX_BRACKETS = 2_000
_C_AVOID = ("\t", "\ufeff", "\u2028", "\u2029", "\x85", "!", "?", "---")
_C_AVOID_RE = re.compile(r"[|>][0-9+-]*#")  # a block scalar's indicators, then a comment


def _compose(text: str) -> yaml.Node | None:
    if (_C_LOADER is not None and len(text) <= _C_MAX_BYTES
            and text.count("[") + text.count("{") <= _C_MAX_BRACKETS
            and not any(c in text for c in _C_AVOID) and not _C_AVOID_RE.search(text)):
        try:
            return yaml.compose(text, Loader=_C_LOADER)
        except Exception:  # noqa: BLE001 - YAMLError, or UnicodeEncodeError on a lone surrogate
            pass  # the pure-Python parser below gives PyYAML's usual answer
    return yaml.compose(text, Loader=yaml.SafeLoader)


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
