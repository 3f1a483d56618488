"""Reuse the code of the methods `dataclasses` generates, across `labctl` processes.

Python 3.11 builds every dataclass's `__init__`, `__repr__`, `__eq__` (and, frozen,
`__setattr__`, `__delattr__`, `__hash__`) by compiling generated source text with
`exec`: ~0.1 ms per method, ~0.6 ms per frozen class. `labctl run` creates ~75 such
classes before its first step: ~45 ms of every start, measured, more than importing
numpy. The text depends only on the class definition, so its compiled code can be kept
like a `.pyc`: this cache maps the text to the code `compile` makes of it (the same
code `exec` would make: no inherited `__future__` flags, filename "<string>") and is
stored with `marshal` in the user's cache folder, one file per Python version.

Installed only by the `labctl` command's process (`labctl.cli.console`), into the
`dataclasses` module's namespace, where its `exec` then resolves first; an in-process
user (tests, notebooks) is untouched. Nothing depends on the cache: a missing,
unreadable or stale file only means compiling again, and the file is written only
when it gained entries. Where `dataclasses` works otherwise (Python 3.13 compiles a
class's methods at once, through another function) the cache is not installed.
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys
from pathlib import Path
from typing import Any

_MAX_ENTRIES = 4000  # far above labctl's own classes; bounds the file's growth
# The file's entry naming the bytecode it holds (a key no generated source text can be):
# code from another interpreter build is never run, whatever the file is called.
_STAMP_KEY = "\0bytecode"


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labctl" / f"dataclass-code.{sys.implementation.cache_tag}.marshal"


class CodeCache:
    """`exec` with compiled code looked up by source text."""

    def __init__(self, path: Path):
        self.path = path
        self.codes: dict[str, Any] = _load(path)
        self.added = 0

    def exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if globals is None:  # exec's own default: the caller's namespaces
            frame = sys._getframe(1)
            globals = frame.f_globals
            locals = frame.f_locals if locals is None else locals
        if type(source) is str:
            code = self.codes.get(source)
            if code is None:
                code = compile(source, "<string>", "exec", dont_inherit=True)
                if len(self.codes) < _MAX_ENTRIES:
                    self.codes[source] = code
                    self.added += 1
            source = code
        builtins.exec(source, globals, locals)

    def save(self) -> None:
        """Write the cache if it gained entries (atomically; failures are ignored: the
        next process compiles again)."""
        if not self.added or sys.dont_write_bytecode:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(marshal.dumps({_STAMP_KEY: _stamp(), **self.codes}))
            os.replace(tmp, self.path)
            self.added = 0
        except (OSError, ValueError):
            try:
                tmp.unlink()
            except OSError:
                pass


def _load(path: Path) -> dict[str, Any]:
    try:
        st = os.stat(path)
        # Code from a file someone else could have written would run as ours: only a
        # file of our own, writable by us alone, is read.
        if st.st_mode & 0o022 or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return {}
        with open(path, "rb") as f:
            codes = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(codes, dict) or codes.pop(_STAMP_KEY, None) != _stamp():
        return {}
    code_type = type(_load.__code__)
    return {k: v for k, v in codes.items() if type(k) is str and type(v) is code_type}


def _stamp() -> bytes:
    from importlib.util import MAGIC_NUMBER  # the .pyc magic: changes with the bytecode

    return MAGIC_NUMBER + sys.version.encode()


def install() -> CodeCache | None:
    """Make `dataclasses` use the cache in this process; None where it does not apply
    (a Python whose `dataclasses` does not compile with `exec` by that name)."""
    import dataclasses

    if getattr(dataclasses, "_create_fn", None) is None or "exec" in vars(dataclasses):
        return None
    cache = CodeCache(cache_file())
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    return cache
