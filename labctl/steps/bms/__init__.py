"""BMS validation steps: the BMS is judged only by the frames it sends, against the spec.

    - bms_protection: {protection: over_voltage, threshold: 4.25 V, delay: 1 s,
                       start: 4.20 V, step: 5 mV, stop: 4.35 V, recovery: 4.15 V, recovery_delay: 1 s}
    - bms_balancing: {imbalance: 50 mV, target: 10 mV, current: 250 mA, soc: 90 %}
    - bms_soc: {initial_soc: 80 %, profile: {time: [0, 30, 60], current: [-10, 5, 0]}, repeat: 5}
    - bms_can_timing: {duration: 30 s}
    - bms_fault_injection: {fault: open_wire, cell: 5, expect: fault_sensor, within: 1 s}
    - bms_current_limit: {direction: charge, table: {temperature_c: [...], soc: [...],
                                                     current_a: [[...], ...]}}
    - bms_measurement: {currents: [0 A, 5 A, -10 A], dwell: 10 s,
                        tolerance: {cell_voltage: 5 mV, pack_current: 1 % + 0.1 A}}
    - bms_report: {}

Protection thresholds are found by a staircase: the condition (cell voltage through
the cell emulator, pack current, a sensor's temperature, stack pressure) is stepped
by `step` and held for `dwell` each time; the first level that trips is the measured
threshold (resolution: one step) and the time from that level's onset to the first
frame showing the fault flag, less half a frame period (the flag appeared between two
frames), is the measured delay (resolution: one frame period of the fault message).
Every result is a row of the record table `bms_checks` (name, value, unit, low, high,
verdict); every frame of the step is in RUN/can/step-NNNN.blf with its decoded signals.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from labctl.lazy import lazy_names

# keyword -> (module, compile function); each module is imported when its step is compiled.
_COMPILERS = {
    "bms_protection": ("protection", "compile_protection"),
    "bms_balancing": ("balancing", "compile_balancing"),
    "bms_soc": ("soc", "compile_soc"),
    "bms_can_timing": ("timing", "compile_timing"),
    "bms_fault_injection": ("faults", "compile_fault"),
    "bms_current_limit": ("current_limit", "compile_current_limit"),
    "bms_measurement": ("measurement", "compile_measurement"),
    "bms_report": ("report", "compile_report"),
}


def compiler(keyword: str) -> Callable[[Any], Any]:
    """The compile function of a BMS step keyword (KeyError for another keyword)."""
    module, name = _COMPILERS[keyword]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__getattr__, __dir__ = lazy_names(__name__, {
    name: f"{__name__}.{module}" for module, name in _COMPILERS.values()})
