"""Reuse the code of the methods `dataclasses` generates, across `labctl` processes.

Python 3.11 builds every dataclass's `__init__`, `__repr__`, `__eq__` (and, frozen,
`__setattr__`, `__delattr__`, `__hash__`) by compiling generated source text with
`exec`: ~0.1 ms per method, ~0.6 ms per frozen class. `labctl run` creates ~75 such
classes before its first step: ~45 ms of every start, measured, more than importing
numpy. The text depends only on the class definition, so its compiled code can be kept
like a `.pyc`: this cache maps the text to the code `compile` makes of it (the same
code `exec` would make: no inherited `__future__` flags, filename "<string>").

One small file per module that defines dataclasses, read when that module makes its
first one (a command that makes none reads nothing), rewritten only when the module
compiled something new, and then with just what this process used (a changed module
leaves no stale entries). The files live in a folder of the user's cache
(`$XDG_CACHE_HOME` or `~/.cache`, then `labctl/dataclass-code/<interpreter>`), named
after the interpreter's bytecode: code is never run by another Python. Code from a
file is run as the user's own, so the folder and each file are opened without following
links and used only when they belong to the user and nobody else can write them; files
are created private (0600) under random names and renamed into place. Nothing is
written under `PYTHONDONTWRITEBYTECODE`. A missing, foreign or damaged file only means
compiling again.

Installed only by the `labctl` command's process (`labctl.cli.console`), into the
`dataclasses` module's namespace, where its `exec` then resolves first; an in-process
user (tests, notebooks) is untouched. Where `dataclasses` works otherwise (Python 3.13
compiles a class's methods at once, through another function) or the platform lacks
the safe file calls, the cache is not installed.
"""

from __future__ import annotations

import builtins
import marshal
import os
import stat
import sys
from pathlib import Path
from typing import Any

_CODE_TYPE = type(compile("", "<string>", "exec"))


def labctl_cache_root() -> Path:
    """labctl's folder of the user's cache (`$XDG_CACHE_HOME` or `~/.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labctl"


def cache_folder() -> Path:
    from importlib.util import MAGIC_NUMBER  # the .pyc magic: changes with the bytecode

    tag = f"{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}-{_short_hash(sys.version)}"
    return labctl_cache_root() / "dataclass-code" / tag


def _short_hash(text: str) -> str:
    import zlib

    return f"{zlib.crc32(text.encode()):08x}"


def _module_file(module: Any) -> str | None:
    """The file name for a module's entries, or None for a namespace that is no module's."""
    if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
        return None
    return f"{module}.marshal"


class CodeCache:
    """`exec` with compiled code looked up by source text, per defining module."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._dir_fd: int | None = None
        self._folder = "unknown"  # then "missing" or "foreign" when it cannot be used
        self._stored: dict[str, dict[str, Any]] = {}  # module -> entries from its file
        self._used: dict[str, dict[str, Any]] = {}  # module -> entries this process ran
        self._new: set[str] = set()  # modules that compiled something not in their file

    def exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if globals is None:  # exec's own default: the caller's namespaces
            frame = sys._getframe(1)
            globals = frame.f_globals
            locals = frame.f_locals if locals is None else locals
        module = globals.get("__name__") if isinstance(globals, dict) else None
        if type(source) is str and _module_file(module) is not None:
            stored = self._stored.get(module)
            if stored is None:
                stored = self._stored[module] = self._read(module)
            code = stored.get(source)
            if code is None:
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self._new.add(module)
            self._used.setdefault(module, {})[source] = code
            source = code
        builtins.exec(source, globals, locals)

    # -- files -----------------------------------------------------------------------------
    def _folder_fd(self, create: bool) -> int | None:
        """The cache folder, opened without following links; None when it is missing (and
        not to be created now) or not the user's alone."""
        if self._dir_fd is not None or self._folder == "foreign":
            return self._dir_fd
        if self._folder == "missing" and not create:
            return None
        try:
            if create:
                os.makedirs(self.folder, mode=0o700, exist_ok=True)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            self._folder = "missing"
            return None
        if not _private(os.fstat(fd)):
            os.close(fd)
            self._folder = "foreign"
            return None
        self._dir_fd = fd
        return fd

    def _read(self, module: str) -> dict[str, Any]:
        dir_fd = self._folder_fd(create=False)
        name = _module_file(module)
        if dir_fd is None or name is None:
            return {}
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and _private(st)):
                return {}
            with os.fdopen(fd, "rb") as f:
                fd = -1
                codes = marshal.loads(f.read())  # load(f) reads object by object: ~10x slower
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        finally:
            if fd >= 0:
                os.close(fd)
        if not isinstance(codes, dict):
            return {}
        return {k: v for k, v in codes.items() if type(k) is str and type(v) is _CODE_TYPE}

    def save(self) -> None:
        """Rewrite the files of the modules that compiled something new (failures are
        ignored: the next process compiles again)."""
        if not self._new or sys.dont_write_bytecode:
            return
        dir_fd = self._folder_fd(create=True)
        if dir_fd is None:
            return
        for module in sorted(self._new):
            name = _module_file(module)
            tmp = f".{name}.{os.urandom(6).hex()}.tmp"
            try:
                data = marshal.dumps(self._used[module])
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                             dir_fd=dir_fd)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except (OSError, ValueError):
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
        self._new.clear()


def _private(st: os.stat_result) -> bool:
    """Ours, and writable by nobody else (the rule of every labctl cache file)."""
    from labctl.private_cache import owned_alone

    return owned_alone(st)


def install() -> CodeCache | None:
    """Make `dataclasses` use the cache in this process; None where it does not apply
    (a Python whose `dataclasses` does not compile with `exec` by that name, a platform
    without the calls that open files safely)."""
    import dataclasses

    if getattr(dataclasses, "_create_fn", None) is None or "exec" in vars(dataclasses):
        return None
    if not (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and hasattr(os, "getuid")
            and os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd):
        return None
    cache = CodeCache(cache_folder())
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    return cache
