"""The PyYAML side of `labctl.yamlio`: compose a text's node tree (LibYAML where it reads
as PyYAML does), refuse every non-plain tag, and convert it to plain data with a map of
where each value stood.

Apart from yamlio so that a process that finds a file's data in the parse cache
(`labctl/yaml_cache.py`) never imports PyYAML (~10 ms, most of it compiling the
Unicode regex of PyYAML's reader).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from labctl.errors import Problem, ValidationError
from labctl.yamlio import MAX_DEPTH, MAX_NODES, LocatedDoc, PathKey, format_path

_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class Converter:
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


def parse(text: str, file: str = "<string>") -> LocatedDoc:
    """Parse YAML text safely into plain data with locations; raises ValidationError.
    (`yamlio.loads` checks the size first.)"""
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
    conv = Converter(file)
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
