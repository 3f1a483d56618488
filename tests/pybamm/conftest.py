"""Shared by the sim-pybamm tests: cell files and station files."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ECM_CELL = HERE / "ecm-example-100ah.yaml"
CHEN_CELL = HERE / "chen2020-5ah.yaml"


def write_station(folder: Path, **settings: object) -> Path:
    """A station with a sim-pybamm cycler (settings as YAML flow values) and a chamber."""
    lines = ["name: PyBaMM test bench", "clock: virtual", "instruments:", "  cycler:",
             "    driver: sim-pybamm",
             "    ranges: {max_current_a: 400.0, max_voltage_v: 5.0, min_voltage_v: 0.0}"]
    lines += [f"    {key}: {value}" for key, value in settings.items()]
    lines += ["  chamber:", "    driver: sim-chamber",
              "    ranges: {min_temperature_c: -40.0, max_temperature_c: 150.0}"]
    path = folder / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_procedure(folder: Path, name: str, steps: list[str], log: str = "every 1 s") -> Path:
    path = folder / f"{name}.yaml"
    body = "\n".join(f"  - {s}" for s in steps)
    path.write_text(f"name: {name}\nrequires: [cycler]\nlog: {log}\nsteps:\n{body}\n")
    return path
