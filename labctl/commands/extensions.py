"""`labctl plugins`, `labctl analyze ...` and `labctl sim serve`."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from labctl.commands.common import (
    console,
    emit_json,
    json_option,
    station_option,
    user_errors,
)


@click.command()
@station_option
@json_option
@user_errors
def plugins(station: str | None, as_json: bool) -> None:
    """List every registered driver, step type, analysis and exporter, and where it came from."""
    from labctl.plugins import build_registry, local_plugin_files

    registry = build_registry(local_plugin_files(station) if station else [])
    items = sorted(registry.all(), key=lambda r: (r.kind, r.name))
    if as_json:
        emit_json({"ok": True, "plugins": [
            {"kind": r.kind, "name": r.name, "source": r.source,
             "description": getattr(r.info, "description", "")} for r in items]})
        return
    table = Table("kind", "name", "source", "description")
    for r in items:
        table.add_row(r.kind, r.name, r.source, getattr(r.info, "description", ""))
    console.print(table)


class _AnalysisGroup(click.Group):
    """`labctl analyze NAME ...`: each registered analysis brings its own sub-command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from labctl.plugins import build_registry

        registry = build_registry()
        return [n for n in registry.names("analysis") if registry.get("analysis", n).command]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        # Build only the named command: one analysis' import problem must not break others.
        from labctl.plugins import build_registry

        registry = build_registry()
        if name not in registry.names("analysis"):
            return None
        info = registry.get("analysis", name)
        if info.command is None:
            return None
        from labctl.fleet.command import add_fleet_options

        return add_fleet_options(info.command(), name)  # --all: every run (labctl/fleet/)


@click.group(cls=_AnalysisGroup)
def analyze() -> None:
    """Analyse a run (or a data file) and store the result in the run's analysis/ folder."""


@click.group()
def sim() -> None:
    """Simulated instruments for real drivers (no hardware needed)."""


@sim.command("serve")
@click.option("--instrument", type=click.Choice(["keithley-2400", "keithley-2450"]),
              default="keithley-2400", show_default=True, help="Command set to speak.")
@click.option("--cell", default=None, help="Cell file or preset on the SMU's terminals.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5025, show_default=True, help="TCP port (0 = any free).")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (no authentication!).")
@click.option("--time-per-read", "time_per_read_s", type=float, default=None,
              help="Virtual seconds each reading takes (lock-step; default 0.1).")
@click.option("--speed", type=float, default=None,
              help="Instead: virtual time runs at this many times the wall clock.")
@click.option("--initial-soc", type=float, default=None, help="Cell state of charge at start (0..1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise-v", type=float, default=0.0, help="Voltage noise (V, 1 sigma).")
@click.option("--noise-a", type=float, default=0.0, help="Current noise (A, 1 sigma).")
@click.option("--gain-error", type=float, default=0.0, help="Mis-calibration: relative reading error.")
@click.option("--offset-v", type=float, default=0.0, help="Mis-calibration: voltage offset (V).")
@click.option("--offset-a", type=float, default=0.0, help="Mis-calibration: current offset (A).")
@click.option("--ready-file", default=None, help="Write the bound port here once listening.")
@user_errors
def sim_serve(**options: Any) -> None:
    """Serve a simulated SMU with a simulated cell over SCPI on TCP (127.0.0.1:5025)."""
    from labctl.simserve.command import serve

    serve(**options)

