"""Channels run in threads of one process and import the run path lazily, at the same time.

A package whose `__init__` imports its own modules lets two threads entering it through
different modules each wait for a module the other is importing; Python then hands one
of them a partially initialised module ("cannot import name", or `_DeadlockError`). With
0-4 ms of delay per import, `labctl.sim.chamber` and `labctl.sim.cycler` imported in two
threads failed 12 times in 30 that way while `labctl/sim/__init__.py` imported its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import labctl

ROOT = Path(labctl.__file__).parent

# Packages first imported by channel threads (drivers, the simulator, the store, steps run
# by the engine), not on the main thread by `prepare` before the threads start.
THREAD_IMPORTED = ["sim", "sim/bms", "store", "drivers", "engine", "stations", "steps", "can",
                   "builtins"]


def _own_imports(package: str) -> list[str]:
    """Module-level imports in the package's __init__ of modules inside the package."""
    name = "labctl." + package.replace("/", ".")
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            targets = [name]  # relative: from . import x
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found += [t for t in targets if t == name or t.startswith(name + ".")]
    return found


def test_packages_imported_by_channel_threads_do_not_import_their_modules_eagerly():
    offenders = {p: _own_imports(p) for p in THREAD_IMPORTED if (ROOT / p / "__init__.py").exists()}
    assert {p: m for p, m in offenders.items() if m} == {}
    assert set(offenders) == set(THREAD_IMPORTED)  # every package listed still exists


def test_the_simulators_names_still_load_from_the_package():
    import labctl.sim as sim
    from labctl.sim.cycler import SimCyclerChannel

    assert sim.SimCyclerChannel is SimCyclerChannel
    assert {"CellState", "SimChamber", "SimWorld"} <= set(sim.__all__)
    assert sim.SimWorld.__name__ == "SimWorld"
    try:
        sim.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")
