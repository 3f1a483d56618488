"""`labctl analyze eis FILE_OR_RUN [--circuit ...] [--thickness-mm X --area-cm2 Y] [--json]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def eis_command() -> click.Command:
    # Imported when the command is built, not when the plugin registers.
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        user_errors,
    )

    @click.command("eis")
    @click.argument("target")
    @click.option("--circuit", default=None,
                  help="Circuit string, e.g. 'R0-p(R1,CPE1)-W1', or 'auto': the best of "
                       "seven usual circuits (with L0 when inductive) by BIC (default: "
                       "'auto' for imported runs and spectrum files; for labctl's runs "
                       "'R0-p(R1,CPE1)-W1', or "
                       "'p(R1,CPE1)-p(R2,CPE2)-CPE3' for a pellet run).")
    @click.option("--thickness-mm", type=float, default=None, help="Pellet thickness (mm).")
    @click.option("--area-cm2", type=float, default=None, help="Electrode area (cm^2).")
    @click.option("--temperature-c", type=float, default=None,
                  help="Temperature of a spectrum file (runs carry their own).")
    @click.option("--weighting", type=click.Choice(["modulus", "proportional", "unit"]),
                  default="modulus", show_default=True)
    @click.option("--output", type=click.Path(file_okay=False), default=None,
                  help="Folder for a spectrum file's results (default: the file is imported into "
                       "the results store and its results go to RUN/analysis/eis/).")
    @click.option("--identifiable-within", type=float, default=0.5, show_default=True,
                  help="Flag a parameter not_identifiable when the data do not give it to "
                       "within this share of its value (2 standard errors, or an equally "
                       "good other minimum); e.g. 0.05 for 5 %.")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
    @results_option
    @json_option
    @user_errors
    def command(target: str, circuit: str | None, thickness_mm: float | None,
                area_cm2: float | None, temperature_c: float | None, weighting: str,
                output: str | None, identifiable_within: float, no_plots: bool, results: str,
                as_json: bool) -> None:
        """Fit impedance spectra of a run (its `spectra` table) or of a spectrum file.

        Stores fits, Lin-KK residuals, conductivity and Arrhenius tables, PNG plots
        and summary.json in RUN/analysis/eis/ (read back with
        labctl.open_run(RUN).analysis("eis")). Spectrum files: CSV/TSV with
        frequency, Z', Z'' columns (see docs/eis.md for the accepted layouts).
        """
        from labctl.analysis.eis.runs import analyze_file, analyze_run
        from labctl.errors import LabctlError

        if not (identifiable_within > 0 and identifiable_within < float("inf")):
            raise LabctlError(f"--identifiable-within must be a positive share (e.g. 0.05 "
                              f"for 5 %), got {identifiable_within}")
        if (thickness_mm is None) != (area_cm2 is None):
            raise LabctlError("--thickness-mm and --area-cm2 go together (pellet conductivity)")
        path = Path(target)
        if path.is_file() and output is not None:  # results where asked, not in the store
            _, folder, summary = analyze_file(path, circuit, output=output,
                                              thickness_mm=thickness_mm, area_cm2=area_cm2,
                                              temperature_c=temperature_c, plots=not no_plots,
                                              weighting=weighting,
                                              identifiable_within=identifiable_within)
        else:
            if output is not None:
                raise LabctlError("--output is for spectrum files; a run's results go to "
                                  "RUN/analysis/eis/")
            from labctl.importers.target import run_or_import

            run_dir = run_or_import(target, results)  # a plain file is imported first
            _, folder, summary = analyze_run(run_dir, circuit, thickness_mm=thickness_mm,
                                             area_cm2=area_cm2, plots=not no_plots,
                                             weighting=weighting,
                                             identifiable_within=identifiable_within)
        if as_json:
            emit_json({"ok": True, "folder": str(folder), "summary": summary})
        else:
            _print(folder, summary)

    return command


def _print(folder: Path, summary: dict[str, Any]) -> None:
    if "circuit_selection" in summary:
        cands = summary["circuit_selection"]["candidates"]
        runner_up = (f"; next {cands[1]['circuit']}, BIC {cands[1]['bic']:+.1f}"
                     if len(cands) > 1 else "")
        click.echo(f"circuit chosen among {len(cands)} by BIC: {cands[0]['circuit']} "
                   f"(BIC {cands[0]['bic']:+.1f}{runner_up}; --circuit to choose)")
    click.echo(f"{summary['n_spectra']} spectra fitted with {summary['circuit']} "
               f"(median chi2 {summary['median_chi_square']:.3g}; "
               f"{summary['n_fit_failed']} not converged, {summary['n_kk_invalid']} fail Lin-KK)")
    flagged = [s for s in summary.get("fit_status", []) if s["at_bound"] or s["not_identifiable"]]
    for s in flagged[:10]:
        bits = []
        if s["not_identifiable"]:
            bits.append("not identifiable: " + ", ".join(s["not_identifiable"]))
        if s["at_bound"]:
            bits.append("at bound: " + ", ".join(s["at_bound"]))
        click.echo(f"  spectrum {s['spectrum']}: " + "; ".join(bits))
    if len(flagged) > 10:
        click.echo(f"  ... {len(flagged) - 10} more spectra with flagged parameters (summary.json)")
    for name, p in summary["parameters"].items():
        click.echo(f"  {name:10s} {p['first']:.5g} .. {p['last']:.5g} {p['unit']}")
    if "sigma_bulk_s_per_cm" in summary:
        bulk = summary["sigma_bulk_s_per_cm"]
        click.echo(f"  sigma bulk  {min(bulk):.4g} .. {max(bulk):.4g} S/cm")
        if "sigma_total_s_per_cm" in summary:
            tot = summary["sigma_total_s_per_cm"]
            click.echo(f"  sigma total {min(tot):.4g} .. {max(tot):.4g} S/cm")
    for q, a in summary.get("arrhenius", {}).items():
        click.echo(f"  Ea {q}: {a.get('activation_energy_ev', float('nan')):.4g} "
                   f"+- {a.get('activation_energy_stderr_ev', float('nan')):.2g} eV")
    click.echo(f"results: {folder}")
