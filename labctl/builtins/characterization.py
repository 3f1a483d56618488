"""Built-in characterization plugin: the `profile:` step and the OCV, GITT, HPPC and SoC analyses.

Step: `profile:` (a current or power profile from a CSV, labctl/steps/profile.py).
Analyses (`labctl analyze ocv|gitt|hppc|soc RUN`), stored in RUN/analysis/<name>/:
labctl/analysis/characterization/. See docs/characterization.md.
"""

from __future__ import annotations

from typing import Any

from labctl.plugins import AnalysisInfo, StepTypeInfo, hookimpl


def _compile_profile(spec: Any) -> Any:
    from labctl.steps.profile import compile_profile

    return compile_profile(spec)


@hookimpl
def labctl_step_types() -> list[StepTypeInfo]:
    return [
        StepTypeInfo("profile", "Follow a current or power profile (drive cycle) from a CSV file",
                     compile=_compile_profile),
    ]


def _command(name: str) -> Any:
    def make() -> Any:
        from labctl.analysis.characterization import command

        return getattr(command, f"{name}_command")()

    return make


def _runner(name: str) -> Any:
    def run(run: Any, **options: Any) -> Any:
        import labctl.analysis.characterization as ch

        return getattr(ch, f"analyze_{name}")(getattr(run, "path", run), **options)

    return run


_ANALYSES = {
    "ocv": "OCV-SoC table (pseudo-OCV branches or relaxed rests), cell-file CSV, hysteresis",
    "gitt": "GITT: relaxed OCV vs SoC, Weppner-Huggins diffusion coefficient per pulse",
    "hppc": "HPPC: R0, RC pairs, DCIR vs SoC and temperature, R0 activation energy, cell file",
    "soc": "SoC estimators (Coulomb, OCV, EKF, UKF) on a run vs a coulomb-counted reference",
}


@hookimpl
def labctl_analyses() -> list[AnalysisInfo]:
    return [AnalysisInfo(name, text, run=_runner(name), command=_command(name))
            for name, text in _ANALYSES.items()]
