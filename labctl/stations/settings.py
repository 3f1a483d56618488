"""Which settings each built-in driver accepts, so `validate` refuses unknown ones.

The drivers check their settings when they are built, i.e. at run time, after the
run directory exists. Their sets are repeated here as plain data because importing
the hardware drivers (PyMeasure, pyvisa) only to validate a station would slow every
command down; tests/hostile/test_station_limits.py proves the two stay equal. A
plugin driver may declare its own with `DriverInfo(settings=...)`; drivers known to
neither are left to check themselves.
"""

from __future__ import annotations

from typing import Any

from labctl.errors import Problem

_VISA = frozenset({"address", "visa_library", "timeout_s", "read_termination",
                   "write_termination"})
_SERIAL = frozenset({"port", "baudrate", "timeout_s"})

DRIVER_SETTINGS: dict[str, frozenset[str]] = {
    "sim-cycler": frozenset({"noise", "resolution", "seed", "initial_soc", "name", "channel",
                             "ambient_c"}),
    "sim-chamber": frozenset({"default_ramp_c_per_min", "noise_c", "seed", "safe_setpoint_c"}),
    "sim-pstat": frozenset({"noise", "dc_noise_v", "seed", "overhead_s"}),
    "sim-press": frozenset({"initial_pressure_mpa", "default_ramp_mpa_per_s", "noise_mpa",
                            "seed"}),
    "sim-calorimeter": frozenset({"preset", "soc", "room_c", "interlock_temperature_c",
                                  "faults", "default_ramp_c_per_min", "air_time_constant_s"}),
    "sim-pybamm": frozenset({"model", "parameter_set", "parameters", "options", "initial_soc",
                             "noise", "resolution", "seed", "name", "channel", "ambient_c",
                             "check_capacity"}),
    "sim-smu": frozenset({"time_per_read_s", "gain_error", "offset_v", "offset_a", "noise_v",
                          "noise_a", "seed", "initial_soc", "loop_natural_hz", "loop_damping",
                          "poll_period_s", "name", "serial"}),
    "keithley-2400": _VISA | {"nplc", "poll_period_s", "time_source", "name"},
    "keithley-2450": _VISA | {"nplc", "poll_period_s", "time_source", "name"},
    "keithley-2281s": _VISA | {"poll_period_s", "time_source", "name"},
    "thermotron-3800": _VISA | {"safe_setpoint_c", "name"},
    "espec": _SERIAL | {"safe_setpoint_c"},
    "keysight-e4980a": _VISA | {"name", "point_time_s"},
    "agilent-4284a": _VISA | {"name", "point_time_s"},
    "pressure-serial": _SERIAL | {"area_mm2", "max_force_n"},
    "tc-logger": _SERIAL | {"channels", "open_is_error"},
}


def allowed_settings(driver: str, info: Any) -> frozenset[str] | None:
    """The settings `driver` accepts, or None when it checks them itself."""
    declared = getattr(info, "settings", None)
    if declared is not None:
        return frozenset(declared)
    return DRIVER_SETTINGS.get(driver)


def check_driver_settings(doc: Any, where: tuple, driver: str, info: Any,
                          settings: dict[str, Any], problems: list[Problem]) -> None:
    """One problem per setting the driver does not know, located at the setting."""
    allowed = allowed_settings(driver, info)
    if allowed is None:
        return
    for key in settings:
        if key not in allowed:
            problems.append(doc.problem(where + (key,), f"unknown setting {key!r} for driver "
                                        f"{driver!r}; allowed: {', '.join(sorted(allowed))}"))
