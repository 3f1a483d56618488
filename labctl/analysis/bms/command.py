"""`labctl analyze bms RUN`: (re)build a run's BMS validation report."""

from __future__ import annotations

from typing import Any

from labctl.importers.target import run_or_import


def bms_command() -> Any:
    import click

    from labctl.commands.common import (
        emit_json,
        json_option,
        results_option,
            user_errors,
    )

    @click.command("bms")
    @click.argument("run")
    @click.option("--no-figures", is_flag=True, help="Only the table and summary.")
    @results_option
    @json_option
    @user_errors
    def command(run: str, no_figures: bool, results: str, as_json: bool) -> None:
        """BMS validation report of RUN: every check with limits and verdict, plots."""
        from labctl.analysis.bms.report import analyze_run

        path = run_or_import(run, results)
        summary = analyze_run(path, figures=not no_figures)
        if as_json:
            emit_json({"ok": True, "run": str(path), **summary})
            return
        click.echo(f"{path}: {summary['checks']} checks, {summary['passed']} pass, "
                   f"{summary['failed']} fail -> {summary['verdict'].upper()}")
        for name in summary["failed_checks"]:
            click.echo(f"  FAIL {name}")
        click.echo(f"report: {path / 'analysis' / 'bms' / 'report.md'}")

    return command
