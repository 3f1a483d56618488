"""Writing a cell file (YAML text + CSV tables) from characterised tables.

The cells package reads cell files but has no writer, so this one writes the
few lines by hand: every value is a number or a `{csv: FILE, column: NAME}`
reference to a long-format CSV beside it (docs/cells.md), so nothing needs
quoting. The result is loaded back with `labctl.cells.load_cell` before it is
handed out, so a file the simulator cannot run is never stored.
"""

from __future__ import annotations

import json
from pathlib import Path

from labctl.cells.spec import CellLimits, ThermalModel


def cell_yaml(*, name: str, chemistry: str, capacity_ah: float, nominal_voltage_v: float,
              limits: CellLimits, n_rc: int, thermal: ThermalModel, activation_energy_ev: float,
              reference_temperature_c: float, source_note: str, ocv_csv: str = "ocv.csv",
              ecm_csv: str = "ecm.csv", initial_soc: float = 0.5,
              initial_temperature_c: float = 25.0) -> str:
    """The YAML text of a cell file whose model tables are CSV files beside it."""
    def num(x: float) -> str:
        return f"{float(x):.9g}"

    def ref(file: str, column: str) -> str:
        return f"{{csv: {file}, column: {column}}}"

    lines = [
        f"# {source_note}",
        "# Limits are the tested cell's (inputs, not measured); the model is characterised.",
        f"name: {json.dumps(name)}",
        f"chemistry: {chemistry}",
        f"capacity_ah: {num(capacity_ah)}",
        f"nominal_voltage_v: {num(nominal_voltage_v)}",
        "limits:",
        f"  max_voltage_v: {num(limits.max_voltage_v)}",
        f"  min_voltage_v: {num(limits.min_voltage_v)}",
        f"  max_charge_current_a: {num(limits.max_charge_current_a)}",
        f"  max_discharge_current_a: {num(limits.max_discharge_current_a)}",
        f"  max_temperature_c: {num(limits.max_temperature_c)}",
        f"  min_temperature_c: {num(limits.min_temperature_c)}",
        "model:",
        f"  ocv_v: {ref(ocv_csv, 'ocv_v')}",
        f"  r0_ohm: {ref(ecm_csv, 'r0_ohm')}",
    ]
    if n_rc:
        lines.append("  rc_pairs:")
        lines += [f"    - {{r_ohm: {ref(ecm_csv, f'r{j}_ohm')}, tau_s: {ref(ecm_csv, f'tau{j}_s')}}}"
                  for j in range(1, n_rc + 1)]
    else:
        lines.append("  rc_pairs: []")
    lines += [
        f"  thermal: {{heat_capacity_j_per_k: {num(thermal.heat_capacity_j_per_k)}, "
        f"heat_transfer_w_per_k: {num(thermal.heat_transfer_w_per_k)}}}",
        f"  activation_energy_ev: {num(activation_energy_ev)}",
        f"  reference_temperature_c: {num(reference_temperature_c)}",
        f"  initial_soc: {num(initial_soc)}",
        f"  initial_temperature_c: {num(initial_temperature_c)}",
    ]
    return "\n".join(lines) + "\n"


def check_cell_folder(folder: Path, file: str = "cell.yaml"):
    """Load the written cell file (raises the loader's located errors if it is wrong)."""
    from labctl.cells import load_cell

    return load_cell(folder / file)
