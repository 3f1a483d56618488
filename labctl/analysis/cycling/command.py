"""`labctl analyze cycling|rate|dqdv RUN ...`: the click commands of the cycling analyses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from labctl.importers.target import run_or_import


def _helpers():
    # Imported when the command is built, not when the plugin registers.
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        run_path_argument,
        user_errors,
    )

    return emit_json, json_option, results_option, run_path_argument, user_errors


def cycling_command() -> click.Command:
    emit_json, json_option, results_option, run_path_argument, user_errors = _helpers()

    @click.command("cycling")
    @click.argument("run")
    @click.option("--threshold", type=float, default=0.8, show_default=True,
                  help="Retention the fit's cycles-to-threshold refers to (fraction).")
    @click.option("--cycles", default=None, help="Cycles for the voltage-curve plot, e.g. 1,100,500.")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
    @results_option
    @json_option
    @user_errors
    def command(run: str, threshold: float, cycles: str | None, no_plots: bool, results: str,
                as_json: bool) -> None:
        """Per-cycle table (capacities, energies, efficiencies, mean voltages, end-of-charge
        voltage, DCIR, max temperature), RPTs, capacity retention and its fit.

        Stored in RUN/analysis/cycling/ (cycles, dcir, rpt, fit tables; capacity and
        voltage-curve plots; summary.json).
        """
        from labctl.analysis.cycling.runs import analyze_cycling
        from labctl.analysis.cycling.segments import parse_cycles

        run_dir = run_or_import(run, results)
        _, folder, summary = analyze_cycling(run_dir, threshold=threshold,
                                             cycles=parse_cycles(cycles), plots_on=not no_plots)
        if as_json:
            emit_json({"ok": True, "folder": str(folder), "summary": summary})
            return
        _print_cycling(folder, summary)

    return command


def rate_command() -> click.Command:
    emit_json, json_option, results_option, run_path_argument, user_errors = _helpers()

    @click.command("rate")
    @click.argument("run")
    @click.option("--capacity-ah", type=float, default=None,
                  help="Nominal capacity for C-rates (default: the run's cell).")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
    @results_option
    @json_option
    @user_errors
    def command(run: str, capacity_ah: float | None, no_plots: bool, results: str,
                as_json: bool) -> None:
        """Rate capability: capacity, energy and mean voltage of each full discharge by C-rate.

        Stored in RUN/analysis/rate/ (rates table and CSV, plots, summary.json).
        """
        from labctl.analysis.cycling.runs import analyze_rate
        from labctl.errors import LabctlError

        if capacity_ah is not None and not capacity_ah > 0:
            raise LabctlError(f"--capacity-ah must be > 0, got {capacity_ah:g}")
        run_dir = run_or_import(run, results)
        _, folder, summary = analyze_rate(run_dir, nominal_capacity_ah=capacity_ah,
                                          plots_on=not no_plots)
        if as_json:
            emit_json({"ok": True, "folder": str(folder), "summary": summary})
            return
        click.echo(f"{'C-rate':>8} {'capacity Ah':>12} {'energy Wh':>10} {'mean V':>8} "
                   f"{'retention':>9}")
        for r in summary["rates"]:
            click.echo(f"{r['c_rate']:8.3g} {r['capacity_ah']:12.4f} {r['energy_wh']:10.4f} "
                       f"{r['mean_voltage_v']:8.4f} {r['capacity_retention']:9.3%}")
        click.echo(f"stored in {folder}")

    return command


def dqdv_command() -> click.Command:
    emit_json, json_option, results_option, run_path_argument, user_errors = _helpers()

    @click.command("dqdv")
    @click.argument("run")
    @click.option("--cycles", default=None,
                  help="Cycles to analyse, e.g. 1,100,500 (default: first, last, two between).")
    @click.option("--direction", type=click.Choice(["discharge", "charge"]), default="discharge",
                  show_default=True, help="Which constant-current segment of each cycle.")
    @click.option("--dv", type=float, default=0.002, show_default=True,
                  help="Voltage grid step (V).")
    @click.option("--smooth-v", type=float, default=0.008, show_default=True,
                  help="Gaussian smoothing width (V).")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
    @results_option
    @json_option
    @user_errors
    def command(run: str, cycles: str | None, direction: str, dv: float, smooth_v: float,
                no_plots: bool, results: str, as_json: bool) -> None:
        """Incremental capacity dQ/dV and differential voltage dV/dQ of chosen cycles, with
        peaks tracked over them.

        Stored in RUN/analysis/dqdv/ (dqdv, dvdq, peaks tables; overlay plots; summary.json).
        """
        from labctl.analysis.cycling.runs import analyze_dqdv
        from labctl.analysis.cycling.segments import parse_cycles

        run_dir = run_or_import(run, results)
        _, folder, summary = analyze_dqdv(run_dir, cycles=parse_cycles(cycles),
                                          direction=direction, dv=dv, smooth_v=smooth_v,
                                          plots_on=not no_plots)
        if as_json:
            emit_json({"ok": True, "folder": str(folder), "summary": summary})
            return
        click.echo(f"dQ/dV ({direction}) of cycles {', '.join(map(str, summary['cycles']))}")
        for p in summary["peaks"]:
            pos = ", ".join(f"{v:.3f}" for v in p["voltage_v"])
            click.echo(f"  peak {p['peak']}: {pos} V (shift {1000 * p['shift_v']:+.1f} mV)")
        click.echo(f"stored in {folder}")

    return command


def _print_cycling(folder: Path, s: dict[str, Any]) -> None:
    click.echo(f"{s['n_cycles']} cycles ({s['n_rpt']} RPTs)")
    if s.get("first_discharge_capacity_ah") is not None:
        first, last = s["first_discharge_capacity_ah"], s["last_discharge_capacity_ah"]
        # coin cells and pellets: mAh, else a few uAh of fade would read 0.0000 Ah
        scale, unit, fmt = (1e3, "mAh", ".3f") if max(first, last) < 0.1 else (1.0, "Ah", ".4f")
        click.echo(f"  discharge capacity {scale * first:{fmt}} -> {scale * last:{fmt}} {unit} "
                   f"(retention {s['last_retention']:.2%})")
    elif s["n_cycles"]:
        click.echo("  no full cycle (one that discharges at least half the largest capacity "
                   "moved): no retention or efficiency")
    if s.get("median_coulombic_efficiency") is not None:
        click.echo(f"  median coulombic efficiency {s['median_coulombic_efficiency']:.5f}, "
                   f"energy efficiency {s['median_energy_efficiency']:.4f}")
    if s.get("first_dcir_ohm") is not None:
        click.echo(f"  DCIR {1000 * s['first_dcir_ohm']:.2f} -> {1000 * s['last_dcir_ohm']:.2f} "
                   f"mOhm; RPT capacity retention {s['rpt_capacity_retention']:.2%}")
    if "fit" in s:
        f = s["fit"]
        params = ", ".join(f"{k}={f[k]:.4g}" for k in ("a", "b", "z") if k in f)
        if s.get("cycles_to_threshold") is None:
            click.echo(f"  fit {f['model']} ({params}, RMSE {f['rmse']:.2g}): "
                       f"{s.get('cycles_to_threshold_note', 'no crossing')}")
        else:
            click.echo(f"  fit {f['model']} ({params}, RMSE {f['rmse']:.2g}): "
                       f"{s['threshold']:.0%} at cycle {s['cycles_to_threshold']:.0f}")
    click.echo(f"stored in {folder}")
