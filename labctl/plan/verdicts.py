"""`labctl run`'s ceilings check, kept for inputs it has already passed clearly.

Before every run the command plans the procedure roughly to refuse one that would run
for centuries or fill the disk (`enforce_ceilings`). For a cycling procedure that is
~15 ms of simulation plus ~7 ms importing the planner, every time the same procedure
is started again on the same cell and station -- the lab's everyday case. The verdict
depends only on what went into it, so this cache keeps "within the ceilings" for
those inputs, as a `.pyc` keeps compiled code:

- the key is a digest of the procedure's text and included texts, the parameter
  overrides and the values they resolved to, the cell file and its table files, the
  station file and its plugin files, the station as loaded (which covers a
  `--channel`), the ceilings, and the Python and numpy versions;
- with it, a digest of the size and modification time of every labctl module loaded
  when the plan was made: a hit counts only while none of them changed (a change to
  the planner, the simulator or the engine drops the entry);
- kept only for a clear pass: the rough plan finished (not cut by its time budget),
  the procedure ran to its end or to an abort, and no figure was within 20 % of a
  ceiling (where the full plan decides). A refusal is never kept: it is planned again.

Not kept at all for a Python procedure (its code may import anything) or when a plugin
from another installed package is registered (its code is not among the files above).
A procedure that changes in any byte is planned again. One file,
`~/.cache/labctl/ceilings/within.marshal` (`$XDG_CACHE_HOME`), by the rules of
`private_cache.py` (the user's alone, no links followed, nothing written under
`PYTHONDONTWRITEBYTECODE`). Used in the `labctl` command's own process alone
(`active`): in-process callers always plan.
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path
from typing import Any

MAX_ENTRIES = 64  # inputs kept (most recently used)
FILE_NAME = "within.marshal"
FORMAT = 1
KEEP_STATUSES = ("completed", "aborted")


def cache_folder() -> Path:
    from labctl.dataclass_code_cache import labctl_cache_root

    return labctl_cache_root() / "ceilings"


def inputs_key(prep: Any, ceilings: Any) -> bytes | None:
    """The digest of everything the verdict depends on besides labctl's code, or None
    where it cannot be known from files (a Python procedure, another package's plugin,
    a cell or station not read from a file, an unreadable file)."""
    import hashlib
    import json

    proc = prep.procedure
    if proc.extra.get("tree") is None or not prep.cell.source or not prep.station.source:
        return None
    if any(not item.source.startswith(("builtin:", "file:")) for item in prep.registry.all()):
        return None
    digest = hashlib.blake2b(digest_size=16)

    def part(data: bytes | str) -> None:
        data = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    numpy = sys.modules.get("numpy")
    part(f"{FORMAT} {sys.version} {getattr(numpy, '__version__', '')}")
    part(repr(ceilings))
    part(proc.text)
    for name, text in sorted(proc.extra.get("included_texts", {}).items()):
        part(name)
        part(text)
    part(json.dumps([prep.params, proc.parameters], sort_keys=True, default=repr))
    files = [prep.cell.source, *(prep.cell.extra or {}).get("table_files", []),
             prep.station.source, *prep.station.plugin_files]
    try:
        for name in files:
            part(str(name))
            part(Path(name).read_bytes())
    except OSError:
        return None
    # The station as loaded: a `--channel` picks one of its channels. (The cell is its
    # files, above: its repr costs ~0.6 ms of numpy printing and adds nothing.)
    part(repr(prep.station))
    return digest.digest()


def _labctl_root() -> str:
    import labctl

    return os.path.dirname(os.path.abspath(labctl.__file__))


def _loaded_modules() -> tuple[str, ...]:
    """The files of the labctl modules loaded now, relative to the package."""
    root = _labctl_root() + os.sep
    out = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.startswith(root):
            out.add(path[len(root):])
    return tuple(sorted(out))


def _code_digest(modules: tuple[str, ...]) -> bytes:
    """Size and modification time of each of these module files, digested."""
    import hashlib

    root = _labctl_root()
    digest = hashlib.blake2b(digest_size=16)
    for rel in modules:
        try:
            st = os.stat(os.path.join(root, rel))
            stamp = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
        except OSError:
            stamp = f"{rel}\0missing\n"
        digest.update(stamp.encode("utf-8", "surrogatepass"))
    return digest.digest()


class VerdictCache:
    """"Within the ceilings" by inputs key (see the module doc).

    The file holds the sets of labctl modules the kept verdicts were made with (a
    command loads much the same set each time, so there are few) and, per inputs key,
    which set and the digest of its files' sizes and modification times then."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._module_sets: list[tuple[str, ...]] | None = None  # read on first use
        self._entries: dict[bytes, tuple[int, bytes]] = {}
        self._changed = False

    def passed(self, key: bytes) -> bool:
        """True when these inputs passed the check, with labctl's code as it is now."""
        self._load()
        entry = self._entries.get(key)
        if entry is None:
            return False
        index, digest = entry
        if _code_digest(self._module_sets[index]) != digest:
            del self._entries[key]
            self._changed = True
            return False
        return True

    def keep(self, key: bytes) -> None:
        self._load()
        modules = _loaded_modules()
        if modules not in self._module_sets:
            self._module_sets.append(modules)
        self._entries.pop(key, None)
        self._entries[key] = (self._module_sets.index(modules), _code_digest(modules))
        while len(self._entries) > MAX_ENTRIES:  # the most recent last
            self._entries.pop(next(iter(self._entries)))
        self._changed = True

    def _load(self) -> None:
        if self._module_sets is None:
            self._module_sets, self._entries = self._read()

    def _read(self) -> tuple[list[tuple[str, ...]], dict[bytes, tuple[int, bytes]]]:
        from labctl.private_cache import read_private

        data = read_private(self.folder, FILE_NAME)
        try:
            version, sets, entries = marshal.loads(data) if data is not None else (0, 0, 0)
        except (EOFError, ValueError, TypeError):
            return [], {}
        if not (version == FORMAT and type(sets) is list and type(entries) is dict
                and all(type(m) is tuple and all(type(r) is str for r in m) for m in sets)):
            return [], {}
        return sets, {k: v for k, v in entries.items()
                      if type(k) is bytes and type(v) is tuple and len(v) == 2
                      and type(v[0]) is int and 0 <= v[0] < len(sets) and type(v[1]) is bytes}

    def save(self) -> None:
        """Rewrite the file if an entry was kept or dropped (failures are ignored); module
        sets no entry uses any more are left out."""
        if not self._changed or self._module_sets is None:
            return
        from labctl.private_cache import write_private

        used = sorted({index for index, _ in self._entries.values()})
        renumber = {old: new for new, old in enumerate(used)}
        sets = [self._module_sets[i] for i in used]
        entries = {k: (renumber[i], d) for k, (i, d) in self._entries.items()}
        write_private(self.folder, FILE_NAME, marshal.dumps((FORMAT, sets, entries)))
        self._changed = False


# The cache `enforce_ceilings` uses in this process, once `active` made it; the `labctl`
# command saves it as it ends (`labctl.cli.console`).
ACTIVE: VerdictCache | None = None


def active() -> VerdictCache | None:
    """The cache, in the `labctl` command's own process (process_exit.labctl_is_the_program:
    not under a profiler, not in a program that embeds the command); else None, and the
    procedure is planned."""
    if ACTIVE is None:
        from labctl.process_exit import labctl_is_the_program

        if labctl_is_the_program():
            install()
    return ACTIVE


def install() -> VerdictCache | None:
    """Keep and reuse verdicts in this process (None where the platform lacks the calls
    that open files safely)."""
    global ACTIVE
    if not (hasattr(os, "O_NOFOLLOW") and hasattr(os, "getuid")):
        return None
    ACTIVE = VerdictCache(cache_folder())
    return ACTIVE
