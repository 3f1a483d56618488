"""Station files: which driver fills which role, with which settings and ranges.

```yaml
name: Simulated bench
clock: virtual          # virtual (as fast as the CPU allows) | realtime
speed: null             # optional: pace virtual time at N virtual seconds per wall second
instruments:
  cycler:
    driver: sim-cycler
    ranges: {max_current_a: 20, max_voltage_v: 5, min_voltage_v: 0}
    calibration_due: 2027-06-30
    noise: {voltage_v: 0.0002}   # every other key is a driver setting
  chamber:
    driver: sim-chamber
    ranges: {min_temperature_c: -40, max_temperature_c: 150}
```
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from labctl.capabilities import ROLES
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.plugins import Registry, build_registry, declared_plugin_files
from labctl.stations.settings import check_driver_settings
from labctl.stations.spec import InstrumentSpec, ReconnectPolicy, StationSpec
from labctl.yamlio import LocatedDoc, load_file

DEFAULT_STATION = "instruments/sim.yaml"
# A paced virtual clock: slower than 1/1000 of real time never finishes a step (1e-300
# passed validation and hung the run); faster than 1e9 is the same as unpaced.
MIN_SPEED, MAX_SPEED = 1e-3, 1e9
_TOP_KEYS = {"name", "description", "clock", "speed", "instruments", "plugins"}
_BINDING_KEYS = {"driver", "ranges", "calibration_due", "description", "reconnect",
                 "allow_native_visa_library"}
# pyvisa backends by name: pure Python (@py), simulated (@sim, FILE@sim) and the
# system's installed VISA (@ivi). Anything else is a path to native code to load.
_VISA_BACKENDS = ("@py", "@sim", "@ivi")
_RECONNECT_KEYS = ("attempts", "backoff", "max_backoff")


def find_default_station() -> Path:
    """`instruments/sim.yaml` in the working folder, else in the labctl checkout; printed.

    Never from a parent folder: a shared ancestor such as /tmp is anybody's to write.
    """
    from labctl.notice import notice

    for candidate in (Path.cwd() / DEFAULT_STATION,
                      Path(__file__).resolve().parents[2] / DEFAULT_STATION):
        if candidate.is_file():
            notice(f"no --station given; using {candidate.resolve()}")
            return candidate
    raise LabctlError(
        f"no station given and no {DEFAULT_STATION} in the working folder or the labctl "
        "checkout; pass --station FILE"
    )


def _number(doc: LocatedDoc, path: tuple, value: Any, problems: list[Problem]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(doc.problem(path, f"must be a finite number, got {value!r}"))
        return None
    return float(value)


def load_station(path: str | Path, registry: Registry | None = None) -> StationSpec:
    """Read and check a station file; unknown drivers and roles are errors."""
    doc = load_file(path)
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict):
        raise ValidationError([doc.problem((), "a station file is a mapping with 'instruments:'")])
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(doc.problem((key,), f"unknown field {key!r}; allowed: {', '.join(sorted(_TOP_KEYS))}"))
    clock = data.get("clock", "virtual")
    if clock not in ("virtual", "realtime"):
        problems.append(doc.problem(("clock",), f"must be 'virtual' or 'realtime', got {clock!r}"))
    speed = data.get("speed")
    if speed is not None:
        speed = _number(doc, ("speed",), speed, problems)
        if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
            problems.append(doc.problem(("speed",), f"must be from {MIN_SPEED:g} to {MAX_SPEED:g} "
                                                    "(virtual seconds per wall second)"))
    plugin_files = declared_plugin_files(doc, path)
    if registry is None:
        registry = build_registry(plugin_files)
    instruments: dict[str, InstrumentSpec] = {}
    raw = data.get("instruments")
    if not isinstance(raw, dict) or not raw:
        problems.append(doc.problem(("instruments",), "must map roles (cycler, chamber, ...) to drivers"))
        raw = {}
    for role, binding in raw.items():
        where = ("instruments", role)
        if role not in ROLES:
            problems.append(doc.problem(where, f"unknown role {role!r}; allowed: {', '.join(ROLES)}"))
            continue
        if not isinstance(binding, dict) or "driver" not in binding:
            problems.append(doc.problem(where, "needs at least 'driver: NAME'"))
            continue
        driver = binding["driver"]
        drivers = registry.names("driver")
        if driver not in drivers:
            problems.append(
                doc.problem(where + ("driver",), f"unknown driver {driver!r}; registered: {', '.join(drivers)}")
            )
            continue
        info = registry.get("driver", driver)
        if role not in info.roles:
            problems.append(
                doc.problem(
                    where + ("driver",),
                    f"driver {driver!r} cannot fill role {role!r}; it provides: {', '.join(info.roles)}",
                )
            )
        ranges: dict[str, float] = {}
        raw_ranges = binding.get("ranges", {}) or {}
        if not isinstance(raw_ranges, dict):
            problems.append(doc.problem(where + ("ranges",), "must be a mapping of name_unit: number"))
            raw_ranges = {}
        for name, value in raw_ranges.items():
            if name == "abuse_rated" and isinstance(value, bool):  # a flag among the numbers
                ranges[name] = 1.0 if value else 0.0
                continue
            number = _number(doc, where + ("ranges", name), value, problems)
            if number is not None:
                ranges[name] = number
        settings = {k: v for k, v in binding.items() if k not in _BINDING_KEYS}
        if role == "bms":  # its DBC and cell file are relative to this station file
            from labctl.builtins.bms import absolute_paths

            settings = absolute_paths(settings, Path(path).resolve().parent)
        _check_visa_library(doc, where, binding, problems)
        check_driver_settings(doc, where, driver, info, settings, problems)
        due = binding.get("calibration_due")
        instruments[role] = InstrumentSpec(
            role=role,
            driver=driver,
            settings=settings,
            ranges=ranges,
            calibration_due=None if due is None else str(due),
            reconnect=_reconnect_policy(doc, where + ("reconnect",), binding.get("reconnect"),
                                        problems),
        )
    if problems:
        raise ValidationError(problems)
    return StationSpec(
        name=str(data.get("name", Path(path).stem)),
        instruments=instruments,
        clock=clock,
        speed=speed,
        source=str(path),
        plugin_files=tuple(str(p) for p in plugin_files),
    )


def _check_visa_library(doc: LocatedDoc, where: tuple, binding: dict,
                        problems: list[Problem]) -> None:
    """`visa_library` names a pyvisa backend; a native library only with explicit consent.

    A path to a shared library is native code loaded into labctl; a station file is
    often copied around, so that needs `allow_native_visa_library: true` beside it.
    """
    native_ok = binding.get("allow_native_visa_library", False)
    if not isinstance(native_ok, bool):
        problems.append(doc.problem(where + ("allow_native_visa_library",), "must be true or false"))
        native_ok = False
    if "visa_library" not in binding:
        return
    lib = binding["visa_library"]
    if not isinstance(lib, str) or not lib.strip():
        problems.append(doc.problem(where + ("visa_library",), "must be a pyvisa backend such as "
                                                              "'@py', '@sim' or 'FILE@sim'"))
        return
    backend_ok = lib in _VISA_BACKENDS or lib.endswith("@sim")
    if not backend_ok and not native_ok:
        problems.append(doc.problem(where + ("visa_library",), f"{lib!r} is not a pyvisa backend "
                                    f"({', '.join(_VISA_BACKENDS)} or FILE@sim); to load a native "
                                    "VISA library add 'allow_native_visa_library: true' to this "
                                    "instrument"))


def _reconnect_policy(doc: LocatedDoc, where: tuple, value: Any, problems: list[Problem]
                      ) -> ReconnectPolicy:
    """`reconnect: {attempts: 3, backoff: 1 s, max_backoff: 30 s}` (times with units or s)."""
    from labctl.units import TIME, UnitError, parse_quantity

    if value is None:
        return ReconnectPolicy()
    if not isinstance(value, dict):
        problems.append(doc.problem(where, "reconnect is a mapping like {attempts: 3, backoff: 1 s, "
                                           "max_backoff: 30 s}"))
        return ReconnectPolicy()
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in _RECONNECT_KEYS:
            problems.append(doc.problem(where + (key,), f"unknown field {key!r}; allowed: "
                                                       f"{', '.join(_RECONNECT_KEYS)}"))
            continue
        if key == "attempts":
            if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 1000:
                problems.append(doc.problem(where + (key,), "attempts must be a whole number "
                                                           f"from 0 to 1000, got {raw!r}"))
                continue
            out["attempts"] = raw
            continue
        try:
            seconds = parse_quantity(str(raw), TIME, allow_bare=True).value
        except UnitError as exc:
            problems.append(doc.problem(where + (key,), f"{key}: {exc.reason}"))
            continue
        if not 0 <= seconds <= 3600:
            problems.append(doc.problem(where + (key,), f"{key} must be between 0 s and 1 hour"))
            continue
        out["backoff_s" if key == "backoff" else "max_backoff_s"] = seconds
    return ReconnectPolicy(**out)
