"""Procedure includes: `- include: FILE` with `with:` overrides, and the compile-size cap.

Split from the compiler (one concern): resolving an include inside the procedure's
folder tree, refusing loops, depth and Python files, reading it (regular files only,
size-capped) and counting every compiled step item across all includes, so that a
few files including each other 8-wide and 11 deep cannot grow `validate` to
gigabytes before anything is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labctl.errors import ValidationError
from labctl.fileio import os_error_text, read_regular_text
from labctl.procedures.tree import Node
from labctl.yamlio import MAX_BYTES, LocatedDoc, format_path, loads

MAX_INCLUDE_DEPTH = 16
# Step items compiled across the procedure and all its includes (a `repeat` body
# counts once, however often it runs). Real procedures have tens to hundreds.
MAX_COMPILED_ITEMS = 20_000


class IncludeSteps:
    """Mixed into the compiler: `include` items and the compiled-items cap."""

    compiled_items = 0

    def count_item(self, f: Any, path: tuple) -> None:
        """Count one step item; past the cap stop compiling at once with where it happened."""
        self.compiled_items += 1
        if self.compiled_items > MAX_COMPILED_ITEMS:
            self.add(f, path, f"the procedure and its includes compile to more than "
                              f"{MAX_COMPILED_ITEMS} step items (includes repeated inside "
                              "includes?); use 'repeat:' for repetition")
            raise ValidationError(self.problems)

    def include(self, f: Any, path: tuple, value: dict) -> list[Node]:
        got = self.text_value(f, path + ("include",), value["include"], "include")
        if got is None:
            return []
        name = got[0].strip()
        where = path + ("include",)
        if not name:
            self.add(f, where, "include needs a file name")
            return []
        target = (f.resolved.parent / name).resolve()
        display = os.path.normpath(os.path.join(os.path.dirname(f.display), name))
        if not target.is_relative_to(self.root):
            self.add(
                f,
                where,
                f"include {name!r} leaves the procedure's directory tree; allowed: "
                f"files under {self.root}",
            )
            return []
        if target.suffix.lower() == ".py":
            self.add(f, where, "a Python procedure cannot be included; include YAML files only")
            return []
        if target in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack, target])
            self.add(f, where, f"include loop: {chain}")
            return []
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            self.add(f, where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
            return []
        doc = self.read_include(f, where, target, display)
        if doc is None:
            return []
        with_raw = value.get("with") or {}
        overrides: dict[str, Any] = {}
        if not isinstance(with_raw, dict):
            self.add(f, path + ("with",), "with is a mapping of parameter: value")
        else:
            for key, raw in with_raw.items():
                if isinstance(raw, str):
                    res = self.sub(f, path + ("with", key), raw)
                    if res is None:
                        continue
                    raw = res[0]
                overrides[key] = raw

        def report(pname: str, message: str) -> None:
            self.add(
                f,
                path + ("with", pname) if pname in overrides else path + ("with",),
                f"{message} (in {display})",
            )

        prefix = f"{f.prefix}{format_path(path)}>{Path(name).name}>"
        self.stack.append(target)
        try:
            nodes, _ = self.compile_doc(doc, target, overrides, report, f.logging, prefix)
        finally:
            self.stack.pop()
        return list(nodes)

    def read_include(self, f: Any, where: tuple, target: Path, display: str) -> LocatedDoc | None:
        if target in self.doc_cache:
            return self.doc_cache[target]
        try:
            text = read_regular_text(target, MAX_BYTES)
        except FileNotFoundError:
            from labctl.suggest import near_files

            self.add(f, where, f"included file not found: {display}{near_files(target)}")
            return None
        except OSError as exc:
            self.add(f, where, f"cannot read included file {display}: {os_error_text(exc)}")
            return None
        except UnicodeDecodeError:
            self.add(f, where, f"cannot read included file {display}: not UTF-8 text")
            return None
        try:
            doc = loads(text, display)
        except ValidationError as exc:
            self.problems.extend(exc.problems)
            return None
        self.doc_cache[target] = doc
        self.included.append(str(target))
        self.texts.append(text)
        return doc

