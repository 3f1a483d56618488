"""Built-in hardware plugin: real instrument drivers, registered through the same hooks as any plugin.

Driver modules are imported only when a station uses them (listing plugins stays fast
and does not need pyvisa/pymeasure to import).
"""

from __future__ import annotations

from typing import Any

from labctl.plugins import DriverInfo, hookimpl


def _lazy(module: str, function: str) -> Any:
    def factory(binding: Any, context: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), function)(binding, context)

    factory.__name__ = function
    return factory


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    smu = "labctl.drivers.keithley_smu"
    return [
        DriverInfo("keithley-2400", ("cycler",), _lazy(smu, "make_keithley_2400"),
                   "Keithley 2400-family SourceMeter as a cycler channel (PyMeasure; software "
                   "step execution; up to 1.05 A / 21 V)"),
        DriverInfo("keithley-2450", ("cycler",), _lazy(smu, "make_keithley_2450"),
                   "Keithley 2450 SourceMeter, native SCPI, as a cycler channel (PyMeasure; "
                   "software step execution; up to 1.05 A / 21 V)"),
        DriverInfo("keithley-2281s", ("cycler",),
                   _lazy("labctl.drivers.keithley_2281s", "make_keithley_2281s"),
                   "Keithley 2281S-20-6 battery-test function as a cycler channel (PyMeasure; "
                   "software step execution; 6.1 A charge / 1 A discharge, 20 V)"),
        DriverInfo("thermotron-3800", ("chamber",),
                   _lazy("labctl.drivers.thermotron", "make_thermotron_3800"),
                   "Thermotron 3800 chamber controller (PyMeasure), manual mode"),
        DriverInfo("espec", ("chamber",), _lazy("labctl.drivers.espec", "make_espec"),
                   "ESPEC-style chamber controller (SCP-220 command style) over serial or TCP"),
        DriverInfo("keysight-e4980a", ("pstat",), _lazy("labctl.drivers.lcr", "make_e4980a"),
                   "Keysight E4980A LCR meter as potentiostat (20 Hz-2 MHz, PyMeasure)"),
        DriverInfo("agilent-4284a", ("pstat",), _lazy("labctl.drivers.lcr", "make_4284a"),
                   "Agilent 4284A LCR meter as potentiostat (20 Hz-1 MHz, PyMeasure)"),
        DriverInfo("pressure-serial", ("press",),
                   _lazy("labctl.drivers.pressure_serial", "make_pressure_serial"),
                   "Load-cell force controller over serial/TCP as stack-pressure rig (MPa <-> N)"),
        DriverInfo("tc-logger", ("thermometer",), _lazy("labctl.drivers.tc_logger", "make_tc_logger"),
                   "Thermocouple logger over serial/TCP (readings converted to °C)"),
        DriverInfo("sim-smu", ("cycler",), _lazy("labctl.drivers.sim_smu", "make_sim_smu"),
                   "Simulated SMU (in-process) behind the real SMU channel; optional calibration "
                   "errors, a reference meter and a current-loop digitiser for qualification"),
    ]
