"""Built-in ageing plugin: the cycling analyses.

Analyses (`labctl analyze cycling|rate|dqdv RUN`), stored in RUN/analysis/<name>/:
labctl/analysis/cycling/. The ageing simulated cell itself is labctl/sim/ageing.py
(no driver of its own: the sim-cycler ages cells whose file has `model.ageing`).
See docs/cycling.md.
"""

from __future__ import annotations

from typing import Any

from labctl.plugins import AnalysisInfo, hookimpl


def _cycling_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.cycling.runs import analyze_cycling

    return analyze_cycling(getattr(run, "path", run), **options)


def _rate_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.cycling.runs import analyze_rate

    return analyze_rate(getattr(run, "path", run), **options)


def _dqdv_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.cycling.runs import analyze_dqdv

    return analyze_dqdv(getattr(run, "path", run), **options)


def _command(name: str) -> Any:
    from labctl.analysis.cycling import command

    return getattr(command, f"{name}_command")()


@hookimpl
def labctl_analyses() -> list[AnalysisInfo]:
    return [
        AnalysisInfo("cycling", "Per-cycle capacities, energies, efficiencies, DCIR; capacity "
                                "retention and its fit", run=_cycling_run,
                     command=lambda: _command("cycling")),
        AnalysisInfo("rate", "Rate capability: capacity, energy, mean voltage by C-rate",
                     run=_rate_run, command=lambda: _command("rate")),
        AnalysisInfo("dqdv", "Incremental capacity dQ/dV and differential voltage dV/dQ of "
                             "chosen cycles, peaks tracked", run=_dqdv_run,
                     command=lambda: _command("dqdv")),
    ]
