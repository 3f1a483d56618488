"""Overhead of labctl's driver stack over raw pyvisa, per voltage read (not a test).

Both paths talk to the same pyvisa-sim device (instruments/sim-devices.yaml,
Keithley 2400 at GPIB0::24::INSTR): raw pyvisa `query(":READ?")` plus parsing the
voltage, versus labctl's `Keithley2400Link.read_voltage()` (PyMeasure's
`values()`, labctl's error guard and `Reading`). Goal: <= 50 µs per read over raw.

    python bench/driver_overhead.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEVICES = f"{REPO / 'instruments' / 'sim-devices.yaml'}@sim"
ADDRESS = "GPIB0::24::INSTR"


def raw_reads(n: int) -> float:
    import pyvisa

    rm = pyvisa.ResourceManager(DEVICES)
    res = rm.open_resource(ADDRESS, read_termination="\n", write_termination="\n")
    t = time.perf_counter()
    for _ in range(n):
        float(res.query(":READ?").split(",")[0])
    dt = time.perf_counter() - t
    res.close()
    return dt / n


def labctl_reads(n: int) -> float:
    from pymeasure.instruments.keithley import Keithley2400

    from labctl.drivers.keithley_smu import Keithley2400Link

    inst = Keithley2400(ADDRESS, visa_library=DEVICES, read_termination="\n",
                        write_termination="\n")
    link = Keithley2400Link(inst)
    t = time.perf_counter()
    for _ in range(n):
        link.read_voltage()
    dt = time.perf_counter() - t
    link.close()
    return dt / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    raw, stack = [], []
    for _ in range(3):  # alternate, keep the best of three of each (least disturbed)
        raw.append(raw_reads(n))
        stack.append(labctl_reads(n))
    r, s = min(raw), min(stack)
    print(f"reads per trial: {n}")
    print(f"raw pyvisa (pyvisa-sim): {r * 1e6:8.1f} µs/read (median {statistics.median(raw) * 1e6:.1f})")
    print(f"labctl driver stack:     {s * 1e6:8.1f} µs/read (median {statistics.median(stack) * 1e6:.1f})")
    print(f"overhead per read:       {(s - r) * 1e6:8.1f} µs (goal <= 50 µs)")


if __name__ == "__main__":
    main()
