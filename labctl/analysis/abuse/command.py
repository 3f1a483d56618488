"""`labctl analyze abuse RUN`: the abuse analysis from the command line."""

from __future__ import annotations

import click

from labctl.commands.common import (
    emit_json,
    json_option,
    results_option,
    user_errors,
)
from labctl.importers.target import run_or_import


@click.command("abuse")
@click.argument("run")
@click.option("--heat-capacity", type=float, default=None,
              help="Heat capacity of the cell in J/K (default: as the calorimeter stated it).")
@click.option("--threshold", type=float, default=0.02, show_default=True,
              help="Self-heating detection threshold in °C/min.")
@results_option
@json_option
@user_errors
def abuse_command(run: str, heat_capacity: float | None, threshold: float, results: str,
                  as_json: bool) -> None:
    """Onset, exothermic peaks, max rate, time to runaway, total heat and endotherms."""
    from labctl.analysis.abuse import analyze_run

    path = run_or_import(run, results)
    summary = analyze_run(path, heat_capacity_j_per_k=heat_capacity, threshold=threshold)
    if as_json:
        emit_json({"ok": True, "run_dir": str(path), "summary": summary})
        return
    click.echo(f"{summary['test']} step {summary['step_index']}: onset "
               f"{_c(summary.get('onset_c'))}, max {summary['max_temperature_c']:.1f} °C, "
               f"max rate {summary.get('max_self_heating_c_per_min', float('nan')):.3g} °C/min")
    exo = ", ".join(f"{x:.1f} °C" for x in summary["exotherm_peaks_c"]) or "none"
    endo = ", ".join(f"{x:.1f} °C" for x in summary["endotherm_peaks_c"]) or "none"
    click.echo(f"  exotherm peaks: {exo}; endotherms: {endo}")
    click.echo(f"  total heat {summary['total_heat_j']:.0f} J ({summary['heat_basis']}, "
               f"C = {summary['heat_capacity_j_per_k']:g} J/K)")
    click.echo(f"stored in {path / 'analysis' / 'abuse'}")


def _c(x: float | None) -> str:
    return "none" if x is None else f"{x:.1f} °C"
