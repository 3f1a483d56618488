"""`labctl analyze soc-eis RUN [RUN ...] --train RUN [--train RUN ...] [--json]`."""

from __future__ import annotations

from typing import Any

import click


def soc_eis_command() -> click.Command:
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        run_path_argument,
        user_errors,
    )

    @click.command("soc-eis")
    @click.argument("runs", nargs=-1, required=True)
    @click.option("--train", "train", multiple=True, required=True,
                  help="A run with spectra at known SoC (repeat for several; e.g. "
                       "eis-vs-soc-at-temperature at several temperatures).")
    @click.option("--capacity-ah", type=float, default=None,
                  help="Capacity for the SoC labels (default: the runs' cell file).")
    @click.option("--frequencies", type=click.IntRange(2, 50), default=10, show_default=True,
                  help="Feature frequencies over the common band.")
    @results_option
    @json_option
    @user_errors
    def command(runs: tuple[str, ...], train: tuple[str, ...], capacity_ah: float | None,
                frequencies: int, results: str, as_json: bool) -> None:
        """Estimate SoC and temperature from single spectra; evaluate on held-out RUNs.

        Trains on the --train runs' spectra (SoC by coulomb counting from a full
        charge, temperature as recorded), estimates every spectrum of each RUN and
        stores estimates and errors in RUN/analysis/soc-eis/ (docs/soc.md).
        """
        from labctl.analysis.soc.eis_runs import soc_eis

        out = soc_eis([run_path_argument(r, results) for r in runs],
                      [run_path_argument(r, results) for r in train],
                      capacity_ah=capacity_ah, n_frequencies=frequencies)
        if as_json:
            emit_json({"ok": True, **out})
        else:
            _print(out)

    return command


def _print(out: dict[str, Any]) -> None:
    click.echo(f"trained on {len(out['train_runs'])} runs, {out['n_training_spectra']} spectra; "
               f"features at {len(out['feature_frequencies_hz'])} frequencies "
               f"{out['feature_frequencies_hz'][0]:.3g}..{out['feature_frequencies_hz'][-1]:.3g} Hz")
    click.echo(f"{'held-out run':60s} {'spectra':>7s} {'SoC RMSE':>9s} {'SoC max':>8s} "
               f"{'T RMSE':>8s}")
    for r in out["runs"]:
        click.echo(f"{r['run'][:60]:60s} {r['n_spectra']:7d} {100 * r['soc']['rmse']:8.2f}% "
                   f"{100 * r['soc']['max_abs_error']:7.2f}% "
                   f"{r['temperature_c']['rmse']:6.2f} C")


def soh_eis_command() -> click.Command:
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        run_path_argument,
        user_errors,
    )

    @click.command("soh-eis")
    @click.argument("run")
    @click.option("--circuit", default="R0-p(R1,CPE1)-p(R2,CPE2)-W1", show_default=True)
    @click.option("--holdout", type=int, default=2, show_default=True,
                  help="Every n-th RPT spectrum is held out of the SoH line's training.")
    @results_option
    @json_option
    @user_errors
    def command(run: str, circuit: str, holdout: int, results: str, as_json: bool) -> None:
        """Resistance and DRT-peak growth against capacity retention of a cycle-life run with
        a spectrum per RPT (cycle-life-eis), and SoH from one spectrum on held-out RPTs."""
        from labctl.analysis.soc.soh_eis import analyze_soh

        growth, _, summary = analyze_soh(run_path_argument(run, results), circuit=circuit,
                                         holdout=holdout)
        if as_json:
            emit_json({"ok": True, "summary": summary})
            return
        click.echo(f"{summary['n_spectra']} RPT spectra, {circuit}; retention "
                   f"{100 * summary['retention_last']:.1f} % at the last RPT, R_dc x"
                   f"{summary['r_dc_growth_last']:.3f}")
        for k, v in summary["growth_last"].items():
            click.echo(f"  {k:28s} x{v:.3f}")
        click.echo(f"SoH from one spectrum, {summary['n_held_out']} held-out RPTs: RMSE "
                   f"{100 * summary['held_out_rmse']:.2f} %, max "
                   f"{100 * summary['held_out_max_abs_error']:.2f} %")
        click.echo(f"results: {summary['folder']}")

    return command


def soc_learned_command() -> click.Command:
    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
        run_path_argument,
        user_errors,
    )

    @click.command("soc-learned")
    @click.argument("run")
    @click.option("--train", "train", multiple=True, required=True,
                  help="A drive-cycle run to train on (repeat for several).")
    @click.option("--cell-file", required=True, type=click.Path(dir_okay=False),
                  help="Cell file whose model the EKF uses (and the capacity).")
    @click.option("--initial-soc-error", type=float, default=0.0, show_default=True,
                  help="EKF start error (fraction).")
    @results_option
    @json_option
    @user_errors
    def command(run: str, train: tuple[str, ...], cell_file: str, initial_soc_error: float,
                results: str, as_json: bool) -> None:
        """scikit-learn SoC estimators (neural network, support-vector machine) trained on
        drive-cycle runs, against the EKF on the held-out RUN (docs/soc.md)."""
        from labctl.analysis.soc.learned import soc_learned

        out = soc_learned(run_path_argument(run, results),
                          [run_path_argument(r, results) for r in train],
                          cell_file=cell_file, initial_soc_error=initial_soc_error)
        if as_json:
            emit_json({"ok": True, "summary": out})
            return
        click.echo(f"held-out run {out['run']}: {out['n_samples']} samples; trained on "
                   f"{len(out['train_runs'])} runs ({out['n_training_samples']} samples)")
        click.echo(f"{'estimator':12s} {'RMSE':>8s} {'max error':>10s}")
        for name, e in out["methods"].items():
            click.echo(f"{name:12s} {100 * e['rmse']:7.2f}% {100 * e['max_abs_error']:9.2f}%")
        click.echo(f"results: {out['folder']}")

    return command
