"""No import cycles in labctl: channels, the console's request threads and a Dask worker's
tasks import modules lazily, from several threads at once.

Two threads that first import a cycle through different modules can each wait for a module
the other is importing; Python then hands one of them a half-initialised module ("cannot
import name", `_DeadlockError`). The usual cycle is a package whose `__init__` imports its
own modules: with 0-4 ms of delay per import, `labctl.sim.chamber` and `labctl.sim.cycler`
imported in two threads failed 12 times in 30 while `labctl/sim/__init__.py` did that.
Packages offer their names through `labctl/lazy.py` instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import labctl
from tests.support import from_import_base

ROOT = Path(labctl.__file__).parent

# Packages that keep importing their modules in __init__: a name they offer equals one of
# their modules' names (`evaluate`, `hppc`), which a lazy name cannot shadow. They are
# analyses, never imported by a run, and fleet tasks load them under a lock
# (labctl/fleet/tasks.py `first_imports`).
EAGER = {"labctl.analysis.soc", "labctl.analysis.ecm"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, name: str, is_package: bool) -> set[str]:
    """Modules a file imports when it is imported (not inside functions or TYPE_CHECKING)."""
    out: set[str] = set()
    stack = list(ast.parse(path.read_text()).body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack += node.orelse
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = from_import_base(node, name, is_package)
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}  # may be a submodule
        stack += list(ast.iter_child_nodes(node))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for imported in _module_level_imports(path, name, path.name == "__init__.py"):
            parts = imported.split(".")
            # importing a.b.c runs a and a.b first
            deps |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.add(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def test_the_cycle_finder_finds_a_package_that_imports_its_modules():
    graph = {"p": {"p.a"}, "p.a": {"p", "p.b"}, "p.b": {"p"}, "q": {"p.a"}}
    assert _cycles(graph) == [{"p", "p.a", "p.b"}]
    assert _cycles({"p": set(), "p.a": {"p", "p.b"}, "p.b": {"p"}}) == []


def test_labctl_has_no_import_cycles_outside_the_eager_analyses():
    graph = _graph()
    assert {"labctl.sim", "labctl.sim.cycler", "labctl.engine.runner"} <= set(graph)
    assert "labctl.capabilities.cycler" in graph["labctl.engine.runner"] or \
        any(d.startswith("labctl.capabilities") for d in graph["labctl.engine.runner"])
    cycles = [c for c in _cycles(graph) if not any(m == e or m.startswith(e + ".")
                                                     for m in c for e in EAGER)]
    assert cycles == []


def test_the_packages_names_still_load():
    import labctl.capabilities as caps
    import labctl.procedures as procedures
    import labctl.sim as sim
    import labctl.steps.bms as bms
    from labctl.capabilities.cycler import SampleBatch
    from labctl.sim.cycler import SimCyclerChannel

    assert sim.SimCyclerChannel is SimCyclerChannel
    assert caps.SampleBatch is SampleBatch and "SampleBatch" in dir(caps)
    assert callable(procedures.parse_step) and callable(bms.compiler("bms_soc"))
    assert set(sim.__all__) == {"CellState", "SimChamber", "SimCyclerChannel", "SimWorld"}
    try:
        sim.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")
