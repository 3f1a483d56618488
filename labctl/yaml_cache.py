"""The data and marks `yamlio` made of a YAML text, kept across `labctl` processes.

A command reads the same few files again and again (a procedure, its cell, the station).
Parsing them is quick, but importing PyYAML is not: ~10 ms of every `labctl run`,
`validate` and `plan`, most of it compiling the large Unicode regex of PyYAML's reader
at import. What `yamlio.loads` makes of a text depends on that text alone (and on
yamlio and PyYAML themselves), so it can be kept like a `.pyc`: this cache maps the
text's digest to the plain data and the path -> (line, column) marks.

One file, `~/.cache/labctl/yaml/parsed.marshal` (`$XDG_CACHE_HOME`), holding the
latest MAX_ENTRIES texts, read when the first text is loaded and rewritten at exit
when something new was parsed. It is valid only for the yamlio, yaml_parse and PyYAML
files it was made with (their size and modification time are part of it), so an
upgrade starts it afresh. The file is read and written by the rules of
`private_cache.py` (the user's alone, no links followed, nothing written under
`PYTHONDONTWRITEBYTECODE`), and its entries hold only plain values (checked); a
missing, foreign or damaged file only means parsing again. Installed by the `labctl`
command's process (`labctl.cli.console`) alone: in-process users (tests, notebooks)
always parse.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import Any

MAX_ENTRIES = 64  # texts kept (most recently used); a lab's everyday files, a few KB each
FILE_NAME = "parsed.marshal"
_PLAIN = (str, int, float, bool, type(None))


def cache_folder() -> Path:
    from labctl.dataclass_code_cache import labctl_cache_root

    return labctl_cache_root() / "yaml"


def _parser_stamp() -> tuple | None:
    """Size and modification time of the files that decide what a text parses to."""
    from importlib.util import find_spec

    import labctl.yamlio

    try:
        spec = find_spec("yaml")
        files = [labctl.yamlio.__file__, str(Path(labctl.yamlio.__file__).with_name(
            "yaml_parse.py")), spec.origin if spec else None]
        stamp = []
        for name in files:
            st = os.stat(name)
            stamp += [st.st_size, st.st_mtime_ns]
        return tuple(stamp)
    except (OSError, TypeError, ValueError, ImportError):
        return None


def _digest(text: str) -> bytes:
    from labctl.hashes import blake2b

    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _plain(value: Any, depth: int = 0) -> bool:
    """Only what yamlio makes: dicts with text keys, lists, text, numbers, booleans, None."""
    if isinstance(value, _PLAIN):
        return True
    if depth > 100:
        return False
    if type(value) is list:
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def _marks_ok(marks: Any) -> bool:
    return type(marks) is dict and all(
        type(k) is tuple and all(type(p) in (str, int) for p in k)
        and type(v) is tuple and len(v) == 2 and all(type(x) is int for x in v)
        for k, v in marks.items())


class ParseCache:
    """yamlio's results by the text's digest (see the module doc)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._entries: dict[bytes, tuple[Any, dict]] | None = None  # read on first use
        self._stamp: tuple | None = None
        self._changed = False

    def get(self, text: str) -> tuple[Any, dict] | None:
        entries = self._load()
        key = _digest(text)
        hit = entries.get(key)
        if hit is None:
            return None
        try:  # a fresh copy each time: callers may change what they get
            data, marks = marshal.loads(hit)
        except (EOFError, ValueError, TypeError):
            data = marks = None
        if not (_plain(data) and _marks_ok(marks)):  # checked when used, not all at read
            del entries[key]
            return None
        return data, marks

    def put(self, text: str, data: Any, marks: dict) -> None:
        if self._stamp is None:
            return  # the parser's files could not be identified: nothing to keep it for
        try:
            blob = marshal.dumps((data, marks))
        except ValueError:  # not plain data (cannot happen for yamlio's output)
            return
        entries = self._load()
        entries.pop(key := _digest(text), None)
        entries[key] = blob  # the most recent last
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        self._changed = True

    # -- the file --------------------------------------------------------------------------
    def _load(self) -> dict[bytes, Any]:
        if self._entries is None:
            self._stamp = _parser_stamp()
            self._entries = self._read() if self._stamp is not None else {}
        return self._entries

    def _read(self) -> dict[bytes, Any]:
        from labctl.private_cache import read_private

        data = read_private(self.folder, FILE_NAME)
        if data is None:
            return {}
        try:
            stamp, entries = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return {}
        if stamp != self._stamp or type(entries) is not dict:
            return {}
        return {k: v for k, v in entries.items() if type(k) is bytes and type(v) is bytes}

    def save(self) -> None:
        """Rewrite the file if something new was parsed (failures are ignored)."""
        if not self._changed or self._entries is None:
            return
        from labctl.private_cache import write_private

        try:
            data = marshal.dumps((self._stamp, self._entries))
        except ValueError:
            return
        write_private(self.folder, FILE_NAME, data)
        self._changed = False


# The cache `yamlio.loads` uses in this process (found through sys.modules, so that a
# command that reads no YAML imports neither module for it).
ACTIVE: ParseCache | None = None


def install() -> ParseCache | None:
    """Have `yamlio.loads` use the cache in this process (None where the platform lacks
    the calls that open files safely)."""
    global ACTIVE
    from labctl.private_cache import supported

    if not supported():
        return None
    ACTIVE = ParseCache(cache_folder())
    return ACTIVE
