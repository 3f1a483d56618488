"""Hook specifications and the plugin manager: labctl's one extension point.

Drivers, step types, analyses and exporters are all contributed through these
hooks, built-ins included. Plugins come from three places: built-in modules,
the `labctl` entry-point group of installed packages, and a lab's own `*.py`
files, which are loaded only when the station file lists them
(`plugins: [my_driver.py]`, paths inside the station file's folder). Loading code
is never implicit: each file loaded is printed on stderr and recorded (with its
sha256) in the run's run.json.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from labctl.errors import LabctlError
from labctl.hashes import sha256

PROJECT = "labctl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PLUGINS = (
    "labctl.drivers.sim_drivers",
    "labctl.builtins.core",
    # One module per capability area; each registers its drivers, steps and analyses.
    "labctl.builtins.impedance",  # potentiostat, pressure rig, eis/pressure steps, EIS analysis
    "labctl.builtins.characterization",  # OCV, GITT, HPPC, SoC-estimator analyses
    "labctl.builtins.ageing",  # cycle-life / rate-capability / dQ-dV analyses
    "labctl.builtins.abuse",  # calorimeter, DSC/ARC steps, abuse analyses
    "labctl.builtins.bms",  # CAN bus, simulated BMS, BMS validation steps and report
    "labctl.builtins.hardware",  # real instrument drivers (Keithley, Thermotron, E4980A...)
    "labctl.builtins.pybamm_sim",  # optional PyBaMM-backed simulated cycler (sim-pybamm)
)


@dataclass(frozen=True)
class DriverInfo:
    """A driver: builds an instrument for a role from a station-file binding.

    `factory(binding, context)` gets the `InstrumentSpec` and a `BuildContext`
    (shared clock, simulated world, cell) and returns the instrument.
    """

    name: str
    roles: tuple[str, ...]
    factory: Callable[..., Any]
    description: str = ""
    # The station settings the driver accepts (validate refuses others); None: it checks.
    settings: frozenset[str] | None = None


@dataclass(frozen=True)
class StepTypeInfo:
    """A structured procedure step keyword (e.g. `chamber:`) and what it does."""

    keyword: str
    description: str = ""
    compile: Callable[..., Any] | None = None  # None: handled by the core compiler


@dataclass(frozen=True)
class AnalysisInfo:
    """An analysis: `run(run, **options)` stores results in run_dir/analysis/<name>/.

    `command()` returns its `labctl analyze <name>` click command (built lazily so
    that listing plugins does not import the analysis' dependencies).
    """

    name: str
    description: str = ""
    run: Callable[..., Any] | None = None
    command: Callable[[], Any] | None = None


@dataclass(frozen=True)
class ExporterInfo:
    """An export format a plugin offers (`labctl export --format NAME`)."""

    name: str  # the --format value
    description: str = ""
    export: Callable[..., Any] | None = None


class LabctlHookSpecs:
    """The hooks a labctl plugin may implement (each returns a list)."""

    @hookspec
    def labctl_drivers(self) -> list[DriverInfo]:
        """Instrument drivers this plugin provides."""

    @hookspec
    def labctl_step_types(self) -> list[StepTypeInfo]:
        """Structured procedure step types this plugin provides."""

    @hookspec
    def labctl_analyses(self) -> list[AnalysisInfo]:
        """Analyses this plugin provides."""

    @hookspec
    def labctl_exporters(self) -> list[ExporterInfo]:
        """Export formats this plugin provides."""


@dataclass(frozen=True)
class Registered:
    """One registered item and where it came from."""

    kind: str  # driver, step_type, analysis, exporter
    name: str
    source: str  # "builtin: module", "entry point: dist", "file: path"
    info: Any


@dataclass
class Registry:
    """Everything the plugins contributed, by kind and name."""

    items: dict[str, dict[str, Registered]] = field(default_factory=dict)
    # Where every registered plugin came from ("builtin: ...", "entry point: ...",
    # "file: ..."), also those that contribute nothing (a file may only patch a module).
    plugins: tuple[str, ...] = ()

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.items[kind][name].info
        except KeyError:
            known = ", ".join(sorted(self.items.get(kind, {}))) or "none"
            raise LabctlError(f"unknown {kind.replace('_', ' ')} {name!r}; registered: {known}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.items.get(kind, {}))

    def all(self) -> list[Registered]:
        return [r for by_name in self.items.values() for r in by_name.values()]


_HOOKS = {
    "driver": "labctl_drivers",
    "step_type": "labctl_step_types",
    "analysis": "labctl_analyses",
    "exporter": "labctl_exporters",
}


def file_sha256(path: str | Path) -> str:
    return sha256(Path(path).read_bytes()).hexdigest()


# Channels (threads of one process, or a fleet worker's) prepare their stations at once: a
# plugin module is in sys.modules before its code has run, so loading is one at a time.
_LOCAL_PLUGINS_LOCK = threading.Lock()


def _load_local_plugin(path: Path) -> Any:
    """Import a lab's plugin file under a unique module name (like conftest.py)."""
    with _LOCAL_PLUGINS_LOCK:
        return _load_local_plugin_locked(path)


def _load_local_plugin_locked(path: Path) -> Any:
    import hashlib

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"labctl_local_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    try:
        sha = file_sha256(path)[:12]
    except OSError as exc:
        raise LabctlError(f"{path}: cannot read plugin file ({exc.strerror or exc})") from None
    # Loading code is never silent (issue 13 §3): say which file, every time a process loads it.
    from labctl.notice import notice

    notice(f"loading plugin code {path} (sha256 {sha}...), listed in the station file")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LabctlError(f"{path}: cannot load plugin file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a lab's own file: report it, do not crash with a traceback
        del sys.modules[module_name]
        raise LabctlError(f"{path}: plugin file failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def plugin_manager(local_files: Iterable[str | Path] = ()) -> pluggy.PluginManager:
    """A plugin manager with built-ins, installed entry points and local files."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(LabctlHookSpecs)
    for name in BUILTIN_PLUGINS:
        pm.register(_hook_functions(importlib.import_module(name)), name=f"builtin: {name}")
    if _entry_points_may_declare(PROJECT):
        pm.load_setuptools_entrypoints(PROJECT)
    for path in local_files:
        p = Path(path)
        pm.register(_load_local_plugin(p), name=f"file: {p}")
    return pm


def _hook_functions(module: Any) -> Any:
    """A built-in plugin module's hook functions (its `labctl_*` names) alone, in a module
    of their own, as the plugin pluggy registers. pluggy looks at every name a plugin has,
    each through inspect.getattr_static: ~240 names in the built-in modules (most of them
    imported classes and functions) for ~20 hooks, ~0.7 ms of every command that loads a
    station. A lab's plugin file or package is registered as it is."""
    hooks = types.ModuleType(module.__name__)
    for name, value in vars(module).items():
        if name.startswith(f"{PROJECT}_"):
            setattr(hooks, name, value)
    return hooks


def _entry_points_may_declare(group: str) -> bool:
    """False only when no installed distribution declares the entry-point `group`.

    pluggy finds entry points through importlib.metadata, which costs ~10 ms to import and
    ~6 ms to read the metadata of the ~230 distributions of this machine's environment,
    for every command that loads a station, even where no package declares a labctl
    plugin (the usual case). This reads only the `entry_points.txt` files, where
    importlib.metadata's path finder looks (`*.dist-info` / `*.egg-info` at the top of each
    `sys.path` folder), and looks for the group's section header as importlib.metadata
    reads it. Anything it cannot judge as cheaply (zip or egg entries, another finder of
    distributions) answers True, and pluggy looks as before.
    """
    import os

    from labctl.distinfo import Unsure, metadata_folders

    try:
        for folder, name in metadata_folders():
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue  # no entry points (or a bare PKG-INFO file)
            if f"[{group}]" not in text.replace(" ", "").replace("\t", ""):
                continue
            for line in text.splitlines():  # importlib.metadata.Sectioned's reading
                line = line.strip()
                if line.startswith("[") and line.endswith("]") and line.strip("[]") == group:
                    return True
    except Unsure:
        return True
    return False


def _source_of(pm: pluggy.PluginManager, plugin_name: str) -> str:
    if plugin_name.startswith(("builtin: ", "file: ")):
        return plugin_name
    for plugin, dist in pm.list_plugin_distinfo():
        if pm.get_name(plugin) == plugin_name:
            return f"entry point: {dist.project_name} {dist.version}"
    return f"plugin: {plugin_name}"


_REGISTRIES: dict[tuple, Registry] = {}


def build_registry(local_files: Iterable[str | Path] = ()) -> Registry:
    """Call every plugin's hooks and index what they provide; duplicates are errors.

    Cached per set of local files (each compile and station load asks for it).
    """
    key = tuple(str(Path(p).resolve()) for p in local_files)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = _build_registry(key)
    return _REGISTRIES[key]


def _build_registry(local_files: Iterable[str | Path]) -> Registry:
    pm = plugin_manager(local_files)
    registry = Registry(plugins=tuple(sorted(_source_of(pm, name)
                                             for name, _ in pm.list_name_plugin())))
    for kind, hook_name in _HOOKS.items():
        by_name: dict[str, Registered] = {}
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            source = _source_of(pm, impl.plugin_name)
            for info in impl.function() or []:
                name = info.name if hasattr(info, "name") else info.keyword
                if name in by_name:
                    raise LabctlError(
                        f"{kind} {name!r} is registered twice: by {by_name[name].source} and by {source}"
                    )
                by_name[name] = Registered(kind, name, source, info)
        registry.items[kind] = by_name
    return registry


def declared_plugin_files(doc: Any, station_file: str | Path) -> list[Path]:
    """The `plugins:` list of a station file (a parsed `LocatedDoc`) as paths.

    Each entry is a `.py` file inside the station file's folder (no absolute paths,
    no `..`), and must be a regular file. Nothing else near the station is loaded.
    """
    from labctl.errors import ValidationError

    data = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("plugins")
    if raw is None:
        return []
    folder = Path(station_file).resolve().parent
    if not isinstance(raw, list):
        raise ValidationError([doc.problem(("plugins",), "plugins is a list of .py files beside "
                                                         "the station file, e.g. [my_driver.py]")])
    problems, files = [], []
    for i, entry in enumerate(raw):
        where = ("plugins", i)
        if not isinstance(entry, str) or not entry.strip():
            problems.append(doc.problem(where, "must be the name of a .py file"))
            continue
        path = (folder / entry).resolve()
        if Path(entry).is_absolute() or not path.is_relative_to(folder):
            problems.append(doc.problem(where, f"{entry!r} leaves the station file's folder; "
                                               f"plugin files must be under {folder}"))
        elif path.suffix != ".py":
            problems.append(doc.problem(where, f"{entry!r} is not a .py file"))
        elif not path.is_file():
            problems.append(doc.problem(where, f"plugin file not found (or not a regular file): "
                                               f"{path}"))
        else:
            files.append(path)
    if problems:
        raise ValidationError(problems)
    return files


def local_plugin_files(station_file: str | Path | None) -> list[Path]:
    """The plugin files a station file lists under `plugins:` (none unless it lists them)."""
    if station_file is None:
        return []
    from labctl.yamlio import load_file

    return declared_plugin_files(load_file(station_file), station_file)
