"""bms_report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.steps.bms.session import BmsStep, stores_files

# ------------------------------------------------------------------------------------------------
# bms_report


@dataclass(frozen=True)
class ReportStep(BmsStep):
    def execute(self, run: Any) -> StepEnd:
        from labctl.analysis.bms.report import analyze_run

        if not stores_files(run):
            return StepEnd(EndKind.CONDITION, "BMS report: not written (no run directory)")
        summary = analyze_run(run.run_dir)
        return StepEnd(EndKind.CONDITION, f"BMS report: {summary['passed']} pass, "
                                          f"{summary['failed']} fail -> {summary['verdict']}")


def compile_report(spec: Any) -> ReportStep | None:
    if spec.value not in (None, {}) and not spec.mapping(()):
        return None
    return ReportStep("bms_report", spec.source(), (), "bms_report")

