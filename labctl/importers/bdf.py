"""Battery Data Format CSV (what `labctl export --format bdf` writes and other BDF
writers) and the PEC cycler's CSV export (mV / mA / mAh / mWh columns)."""

from __future__ import annotations

from pathlib import Path

from labctl.importers.base import Parsed
from labctl.importers.generic import Roles, read_text

BDF = Roles(
    time=("Test Time",), current=("Current",), voltage=("Voltage",),
    cycle=("Cycle Count", "Cycle Index"), step=("Step Count", "Step Index"),
    charge_ah=("Cycle Charging Capacity", "Charging Capacity", "Charge Capacity"),
    discharge_ah=("Cycle Discharging Capacity", "Discharging Capacity", "Discharge Capacity"),
    charge_wh=("Cycle Charging Energy", "Charging Energy", "Charge Energy"),
    discharge_wh=("Cycle Discharging Energy", "Discharging Energy", "Discharge Energy"),
    temperature=("Surface Temperature", "Temperature", "Cell Temperature"),
    unix_time=("Unix Time",), label=("Step Type",),
)

PEC = Roles(
    time=("Total_Time_Seconds", "Total Time (Seconds)", "Total Time", "Test Time"),
    current=("Current",), voltage=("Voltage",), cycle=("Cycle",), step=("Step",),
    charge_ah=("Charge_Capacity", "Charge Capacity"),
    discharge_ah=("Discharge_Capacity", "Discharge Capacity"),
    charge_wh=("Charge_Energy", "Charge Energy"),
    discharge_wh=("Discharge_Energy", "Discharge Energy"),
    temperature=("Temperature", "Cell Temperature"), date=("Real_Time", "Real Time"),
)


def read_bdf(path: Path, data: bytes) -> Parsed:
    return read_text(path, data, "bdf", BDF)


def read_pec(path: Path, data: bytes) -> Parsed:
    return read_text(path, data, "pec", PEC)
