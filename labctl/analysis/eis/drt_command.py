"""`labctl analyze drt RUN_OR_FILE [--lambda auto|VALUE] [--method gcv|lcurve] [--json]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _lambda(value: str) -> float | str:
    from labctl.errors import LabctlError

    if value == "auto":
        return value
    try:
        lam = float(value)
    except ValueError:
        raise LabctlError(f"--lambda {value!r}: use 'auto' or a number > 0") from None
    if not (lam > 0 and lam < float("inf")):
        raise LabctlError(f"--lambda {value!r}: use 'auto' or a number > 0")
    return lam


def drt_command() -> click.Command:
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        user_errors,
    )

    @click.command("drt")
    @click.argument("target")
    @click.option("--lambda", "lam", default="auto", show_default=True,
                  help="Regularisation: 'auto' (chosen by --method) or a number > 0.")
    @click.option("--method", type=click.Choice(["gcv", "lcurve"]), default="gcv",
                  show_default=True, help="How 'auto' chooses lambda: generalised "
                  "cross-validation or the L-curve corner.")
    @click.option("--output", type=click.Path(file_okay=False), default=None,
                  help="Folder for a spectrum file's results (default: the file is imported "
                       "into the results store and analysed as a run).")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
    @results_option
    @json_option
    @user_errors
    def command(target: str, lam: str, method: str, output: str | None, no_plots: bool,
                results: str, as_json: bool) -> None:
        """Distribution of relaxation times of a run's spectra or of a spectrum file.

        Tikhonov-regularised, non-negative; lambda by GCV or the L-curve (stated in
        the output). Stores drt, drt_peaks and drt_fit tables, plots and
        summary.json in RUN/analysis/drt/ (see docs/eis.md).
        """
        from labctl.analysis.eis.drt_runs import analyze_file, analyze_run
        from labctl.errors import LabctlError

        value = _lambda(lam)
        path = Path(target)
        if path.is_file() and output is not None:  # results where asked, not in the store
            _, folder, summary = analyze_file(path, lam=value, method=method, output=output,
                                              plots=not no_plots)
        else:
            if output is not None:
                raise LabctlError("--output is for spectrum files; a run's results go to "
                                  "RUN/analysis/drt/")
            from labctl.importers.target import run_or_import

            run_dir = run_or_import(target, results)  # a plain file is imported first
            _, folder, summary = analyze_run(run_dir, lam=value, method=method,
                                             plots=not no_plots)
        if as_json:
            emit_json({"ok": True, "folder": str(folder), "summary": summary})
        else:
            _print(folder, summary)

    return command


def _print(folder: Path, summary: dict[str, Any]) -> None:
    for s in summary["spectra"][:20]:
        click.echo(f"{s['name']}: lambda {s['lambda']:.3g} ({s['lambda_method']}), "
                   f"R_inf {s['r_inf_ohm']:.4g} Ohm, R_pol {s['r_polarisation_ohm']:.4g} Ohm, "
                   f"residual rms {s['residual_rms_pct']:.2f} %")
        for p in s["peaks"]:
            click.echo(f"  peak tau {p['tau_s']:.4g} s ({p['frequency_hz']:.4g} Hz): "
                       f"R {p['resistance_ohm']:.4g} Ohm")
    if summary["n_spectra"] > 20:
        click.echo(f"... {summary['n_spectra'] - 20} more spectra (summary.json)")
    click.echo(f"results: {folder}")
