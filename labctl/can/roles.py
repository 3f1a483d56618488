"""labctl's BMS roles: what a station file may map to DBC signals, and the unit of each.

Per-cell roles need one signal per cell; pack-level roles are what a vehicle-facing DBC
offers (pack voltage and current, minimum/maximum cell voltage and temperature, the
cell-voltage spread, SoC, the allowed charge/discharge currents, contactor state and a
handful of fault flags). A BMS with one over-current flag for both directions maps it
as `fault_over_current`.
"""

from __future__ import annotations

# Roles with one value (kind = what unit family the DBC signal must have).
SCALAR_ROLES: dict[str, str] = {
    "pack_voltage_v": "voltage",
    "pack_current_a": "current",
    "pack_power_w": "power",
    "soc": "fraction",
    "contactor_closed": "flag",
    "stack_pressure_mpa": "pressure",
    "min_cell_voltage_v": "voltage",
    "max_cell_voltage_v": "voltage",
    "cell_voltage_delta_v": "voltage",
    "min_cell_temperature_c": "temperature",
    "max_cell_temperature_c": "temperature",
    "max_charge_current_a": "current",
    "max_discharge_current_a": "current",
    "fault_over_voltage": "flag",
    "fault_under_voltage": "flag",
    "fault_over_current": "flag",  # one flag for both directions
    "fault_over_current_charge": "flag",
    "fault_over_current_discharge": "flag",
    "fault_over_temperature": "flag",
    "fault_under_temperature": "flag",
    "fault_pressure": "flag",
    "fault_sensor": "flag",
    "fault_comm": "flag",
    "cmd_contactor_close": "flag",
    "cmd_balancing_enable": "flag",
}
# Roles with one value per cell.
CELL_ROLES: dict[str, str] = {
    "cell_voltage_v": "voltage",
    "cell_temperature_c": "temperature",
    "balancing": "flag",
}
ALL_ROLES = (*CELL_ROLES, *SCALAR_ROLES)
COMMAND_ROLES = ("cmd_contactor_close", "cmd_balancing_enable")
REQUIRED_ROLES = ("pack_current_a", "contactor_closed", "cmd_contactor_close")
FAULT_ROLES = tuple(r for r in SCALAR_ROLES if r.startswith("fault_"))
# A flag the BMS may report either per direction or once for both.
EITHER_FAULT = {
    "fault_over_current_charge": ("fault_over_current_charge", "fault_over_current"),
    "fault_over_current_discharge": ("fault_over_current_discharge", "fault_over_current"),
}

# DBC unit -> factor to labctl's unit, per kind.
UNITS: dict[str, dict[str, float]] = {
    "voltage": {"V": 1.0, "mV": 1e-3, "kV": 1e3},
    "current": {"A": 1.0, "mA": 1e-3, "kA": 1e3},
    "power": {"W": 1.0, "kW": 1e3, "MW": 1e6},
    "temperature": {"degC": 1.0, "°C": 1.0, "C": 1.0, "deg C": 1.0, "Cel": 1.0},
    "pressure": {"MPa": 1.0, "kPa": 1e-3, "bar": 0.1, "Pa": 1e-6},
    "fraction": {"%": 0.01, "": 1.0, "1": 1.0},
}
