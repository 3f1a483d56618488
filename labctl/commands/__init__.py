"""The `labctl` sub-commands, one module per concern; `labctl.cli` loads each lazily."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a command imports its modules.

    Imports allocate tens of thousands of objects and make no cyclic garbage, yet trigger
    collections that walk them all again (~14 ms of CPU of `labctl run`'s start-up,
    measured). The collector's previous state is restored, so an in-process caller
    (tests, notebooks) keeps its own setting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if FREEZE_AFTER_IMPORTS:
            # A `labctl` process (not an in-process caller): what was just imported lives
            # until the process ends, so the collector need never walk it. Without this the
            # first collections after the pause walk all of it twice (~8 ms of `labctl run`).
            gc.freeze()
        if was_enabled:
            gc.enable()


# Set by `labctl.cli.console`, the command's entry point: True only in a labctl process.
FREEZE_AFTER_IMPORTS = False
