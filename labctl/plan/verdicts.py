"""`labctl run`'s ceilings check, kept for inputs it has already passed clearly.

Before every run the command plans the procedure roughly to refuse one that would run
for centuries or fill the disk (`enforce_ceilings`). For a cycling procedure that is
~15 ms of simulation plus ~7 ms importing the planner, every time the same procedure
is started again on the same cell and station -- the lab's everyday case. Where the
plan is a function of its inputs and labctl's code alone, this cache keeps "within the
ceilings" for those inputs, as a `.pyc` keeps compiled code:

- only where that is so (`keepable`): a YAML procedure of plain electrical and chamber
  steps (no profile step: it reads a CSV file), labctl's built-in plugins only (no
  plugin file, whose imports are not followed; no other package's), and a station
  whose twin is made of the standard stand-ins alone (a simulated BMS or calorimeter
  reads files of its own);
- the key is a digest of what was parsed and checked, not of files read again: the
  procedure's text and included texts, the parameter overrides and the values they
  resolved to, the cell and the station as loaded, every field and table value (so a
  cell's CSV table and a `--channel` count; a comment does not), the ceilings, and
  the labctl, Python and numpy versions;
- with it, a digest of the size, modification time, inode and change time of every
  labctl module loaded when the plan was made: a hit counts only while none of them
  changed (an edit, a reinstall or a copy of the planner, simulator or engine drops it),
  and nothing is kept when one changed while (or just before) the plan ran;
- kept only for a clear pass: the rough plan finished (not cut by its time budget),
  the procedure ran to its end or to an abort, and no figure was within 20 % of a
  ceiling (where the full plan decides). A refusal is never kept: it is planned again.

One file, `~/.cache/labctl/ceilings/within.marshal` (`$XDG_CACHE_HOME`), by the rules
of `private_cache.py` (the user's alone, no links followed, a FIFO not waited on,
nothing written under `PYTHONDONTWRITEBYTECODE`); a damaged or planted file only means
planning. Used in the `labctl` command's own process alone (`active`): in-process
callers always plan.
"""

from __future__ import annotations

import marshal
import os
import re
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
    where that is not known (see `keepable`)."""
    import json

    from labctl.hashes import blake2b

    if not keepable(prep):
        return None
    proc = prep.procedure
    digest = blake2b(digest_size=16)

    def part(data: bytes | str) -> None:
        data = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    import labctl

    numpy = sys.modules.get("numpy")
    part(f"{FORMAT} {labctl.__version__} {sys.version} {getattr(numpy, '__version__', '')}")
    part(repr(ceilings))
    # What was parsed and checked, not the files read again (they may have changed since).
    part(proc.text)
    for name, text in sorted(proc.extra.get("included_texts", {}).items()):
        part(name)
        part(text)
    part(json.dumps([prep.params, proc.parameters], sort_keys=True, default=repr))
    for loaded in (prep.cell, prep.station):  # with their tables, a --channel, ...
        if not _feed(part, loaded):
            return None
    return digest.digest()


def keepable(prep: Any) -> bool:
    """Whether the plan depends on nothing but the procedure's texts and parameters, the
    cell and station as loaded, and labctl's own modules: a YAML procedure of plain
    electrical and chamber steps (a profile step reads its CSV file), labctl's built-in
    plugins only (no plugin file, even one that registers nothing: it may patch a module;
    no other package's entry point),
    and a twin made of the standard stand-ins alone (a simulated BMS or calorimeter
    reads files of its own)."""
    from labctl.capabilities.steps import ChamberStep, ElectricalStep
    from labctl.plan.twin import TWIN_DRIVERS, twin_spec
    from labctl.procedures.tree import leaves

    tree = prep.procedure.extra.get("tree")
    if tree is None:  # a Python procedure: its code may import anything
        return False
    if prep.station.plugin_files or any(
            not source.startswith("builtin:")
            for source in (*getattr(prep.registry, "plugins", ("?",)),
                           *(item.source for item in prep.registry.all()))):
        return False
    for leaf in leaves(tree):
        step = leaf.step
        if not (type(step) is ChamberStep
                or (type(step) is ElectricalStep and step.profile is None)):
            return False
    stand_ins = set(TWIN_DRIVERS.values())
    return all(b.driver in stand_ins for b in twin_spec(prep.station).instruments.values())


def _feed(part: Any, value: Any, depth: int = 0) -> bool:
    """Feed a loaded cell or station (dataclasses, dicts, lists, arrays, plain values) to
    `part`, all of it (a repr would elide long arrays); False for anything else."""
    import dataclasses
    import enum

    import numpy as np

    if depth > 40:
        return False
    if value is None or isinstance(value, (bool, int, float, str, enum.Enum, Path)):
        part(f"{type(value).__name__}:{value!r}")
        return True
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return False
        part(f"ndarray:{value.dtype.str}:{value.shape}")
        part(np.ascontiguousarray(value).tobytes())
        return True
    if isinstance(value, np.generic):
        part(f"{type(value).__name__}:{value!r}")
        return True
    if isinstance(value, dict):
        part(f"dict:{len(value)}")
        return all(_feed(part, k, depth + 1) and _feed(part, v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, (list, tuple)):
        part(f"{type(value).__name__}:{len(value)}")
        return all(_feed(part, v, depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        part(f"dataclass:{type(value).__module__}.{type(value).__qualname__}")
        return all(_feed(part, f.name, depth + 1)
                   and _feed(part, getattr(value, f.name), depth + 1)
                   for f in dataclasses.fields(value))
    return False


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


# A module changed this close to the check's start (or after it) may not be the code the
# plan ran: no verdict is kept then. Wide, for file systems with coarse time stamps.
RECENT_NS = 2_000_000_000


def _code_digest(modules: tuple[str, ...], checked_since_ns: int | None = None) -> bytes | None:
    """Size, modification time, inode and change time of each of these module files,
    digested; None when one of them changed after `checked_since_ns` - RECENT_NS."""
    from labctl.hashes import blake2b

    root = _labctl_root()
    digest = blake2b(digest_size=16)
    for rel in modules:
        try:
            # The inode and its change time too: a copy that keeps modification times
            # (cp -p, rsync -a, an image) still gets new ones.
            st = os.stat(os.path.join(root, rel))
            stamp = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}\n"
            if checked_since_ns is not None and \
                    max(st.st_mtime_ns, st.st_ctime_ns) >= checked_since_ns - RECENT_NS:
                return None
        except (OSError, ValueError):  # ValueError: a NUL in a damaged file's name
            stamp = f"{rel}\0missing\n"
        digest.update(stamp.encode("utf-8", "surrogatepass"))
    return digest.digest()


def _module_name_ok(rel: object) -> bool:
    """A module file's name relative to labctl's folder, as `_loaded_modules` writes it:
    no `..` between its separators. Split without making a Path: the cache file's ~500
    names are checked at every `labctl run` (the cache is used on POSIX only)."""
    return (type(rel) is str and rel.endswith(".py") and "\0" not in rel
            and not os.path.isabs(rel) and ".." not in _SEPARATORS.split(rel))


_SEPARATORS = re.compile(r"[\\/]" if os.sep == "\\" else r"/")


class VerdictCache:
    """The inputs that passed the check clearly, by key (see the module doc).

    The file holds the sets of labctl modules the kept verdicts were made with (a
    command loads much the same set each time, so there are few) and, per inputs key,
    which set and the digest of its files' sizes, modification times, inodes and change
    times then."""

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
        if next(reversed(self._entries)) != key:  # the most recent last (rewritten then)
            del self._entries[key]
            self._entries[key] = entry
            self._changed = True
        return True

    def keep(self, key: bytes, checked_since_ns: int) -> None:
        """Keep a pass for `key`, found by a check that started at `checked_since_ns`
        (time.time_ns()): not if one of labctl's modules changed since (or just before)."""
        self._load()
        modules = _loaded_modules()
        digest = _code_digest(modules, checked_since_ns)
        if digest is None:
            return
        if modules not in self._module_sets:
            self._module_sets.append(modules)
        self._entries.pop(key, None)
        self._entries[key] = (self._module_sets.index(modules), digest)
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
                and all(type(m) is tuple and all(_module_name_ok(r) for r in m) for m in sets)):
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
    from labctl.private_cache import supported

    if not supported():
        return None
    ACTIVE = VerdictCache(cache_folder())
    return ACTIVE
