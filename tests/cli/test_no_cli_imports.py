"""Nothing below the command line imports it: `labctl/cli.py` is the top of labctl (the
`labctl` console script, `python -m labctl.cli`), and the commands, the engine, the
console, fleet workers and in-process users work without it. Checked in the source (every
import statement and `import_module` call, in functions too) and in a fresh interpreter
that imports every labctl module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import from_import_base

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "labctl"
CLI = "labctl.cli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_cli(name: str) -> bool:
    return name == CLI or name.startswith(CLI + ".")


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The modules (or module attributes, which may be submodules) a node imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = from_import_base(node, module, is_package)
        return [base, *(f"{base}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if called in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                and isinstance(first.value, str):
            return [first.value]
    return []


def _cli_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Each place in `source` that imports labctl.cli, as `line: code`."""
    return [f"{node.lineno}: {ast.unparse(node)}" for node in ast.walk(ast.parse(source))
            if any(_is_cli(name) for name in _imported_names(node, module, is_package))]


@pytest.mark.parametrize(("source", "module", "is_package"), [
    ("import labctl.cli", "labctl.store.run", False),
    ("import labctl.cli as c", "labctl.store.run", False),
    ("from labctl.cli import console", "labctl.store.run", False),
    ("from labctl import errors, cli", "labctl.store.run", False),
    ("def f():\n    from labctl import cli as c\n", "labctl.store.run", False),
    ("from . import cli", "labctl", True),
    ("from .cli import main", "labctl.errors", False),
    ("from .. import cli", "labctl.commands.runs", False),
    ("from ...cli import COMMANDS", "labctl.sim.abuse", True),
    ("import importlib\nimportlib.import_module('labctl.cli')", "labctl.fleet.tasks", False),
])
def test_the_scan_sees_every_way_of_importing_the_cli(source, module, is_package):
    assert len(_cli_imports(source, module, is_package)) == 1


@pytest.mark.parametrize("source", [
    'cmd = [sys.executable, "-m", "labctl.cli", "run"]',  # starting the command is fine
    "from labctl import client",
    "import labctl.cli_help",
    "from labctl.commands import cli",  # another module's attribute of that name
])
def test_the_scan_leaves_other_code_alone(source):
    assert _cli_imports(source, "labctl.console.launch") == []


def test_no_labctl_module_imports_the_cli_module():
    files = [p for p in sorted(ROOT.rglob("*.py")) if p != ROOT / "cli.py"]
    assert len(files) > 100  # the whole package was scanned
    sources = {path: path.read_text() for path in files}
    # Parsing all of them takes ~1.4 s; an import of labctl.cli names "cli" in its text.
    found = [f"{path.relative_to(REPO)}:{where}" for path, text in sources.items()
             if "cli" in text
             for where in _cli_imports(text, _module_name(path), path.name == "__init__.py")]
    assert not found, "\n".join(found)


# Imports every labctl module but the command line, and names the first after whose import
# labctl.cli was loaded. Modules whose optional extras are missing (ImportError) are skipped.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import labctl
walked, skipped, culprit = [], {}, None
def onerror(name):
    skipped[name] = repr(sys.exc_info()[1])
for info in pkgutil.walk_packages(labctl.__path__, "labctl.", onerror=onerror):
    if info.name == "labctl.cli":
        continue
    walked.append(info.name)
    try:
        importlib.import_module(info.name)
    except ImportError as exc:
        skipped[info.name] = repr(exc)
    if culprit is None and "labctl.cli" in sys.modules:
        culprit = info.name
print(json.dumps({"walked": walked, "skipped": skipped, "culprit": culprit,
                  "modules": sorted(sys.modules)}))
"""


def test_importing_every_labctl_module_does_not_load_the_cli_module():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    modules, skipped = set(seen["modules"]), seen["skipped"]
    expected = {_module_name(p) for p in ROOT.rglob("*.py")} - {"labctl", CLI}
    # The walk found every module and imported all it did not skip.
    assert set(seen["walked"]) == expected, sorted(set(seen["walked"]) ^ expected)
    assert expected - set(skipped) <= modules
    assert CLI not in modules, (f"labctl.cli loaded by importing {seen['culprit']}",
                                {"skipped (optional extras missing)": skipped})
