"""`labctl plan`: what a procedure will do, from its simulated twin, before a bench is touched.

- `plan_prepared(prep)` -> PlanReport: run the validated procedure on the twin of the
  station (labctl.plan.twin) with the engine and no storage (labctl.plan.walk),
  folded into a report (labctl.plan.report).
- `enforce_ceilings(prep)`: what `labctl validate` and `labctl run` call; raises a
  LabctlError (exit 2) with the estimate when the plan passes a ceiling
  (labctl.plan.bounds), and returns the report (or None when the procedure's text
  alone shows it is within them and no report was asked for).

Light to import: the simulator and the engine are imported when a plan is made.
See docs/plan.md.
"""

from __future__ import annotations

import time
from typing import Any

from labctl.errors import LabctlError
from labctl.plan.bounds import Ceilings

CHECK_BUDGET_S = 3.0  # wall seconds validate/run spend planning at most


def plan_prepared(prep: Any, ceilings: Ceilings | None = None, *, rough: bool = False,
                  budget_s: float | None = None) -> Any:
    """Plan a procedure already checked against its cell and station (`engine.prepare.prepare`).

    `rough`: sample slowly changing loop iterations far more sparsely (a few % instead of
    0.2 %): enough to compare with the ceilings, several times faster on long runs.
    `budget_s`: stop planning after this much wall time (the report then covers the steps
    planned so far, status "truncated")."""
    from labctl.plan.report import build_report
    from labctl.plan.twin import open_twin
    from labctl.plan.walk import WalkOutcome, walk_procedure

    ceilings = ceilings or Ceilings()
    proc = prep.procedure
    if prep.cell.model is None:
        raise LabctlError(no_model(prep))
    started = time.time()
    too_fast = _too_fast(proc, ceilings)
    if too_fast is not None:
        outcome = WalkOutcome([], "refused", too_fast, 0.0, {}, [], [], False, 0.0)
    else:
        station = open_twin(prep.station, prep.cell, prep.registry)
        outcome = walk_procedure(proc, station, prep.cell,
                                 ceilings.horizon_s(proc.max_duration_s), rough=rough,
                                 budget_s=budget_s)
    return build_report(outcome, proc=proc, cell=prep.cell, station=prep.station,
                        ceilings=ceilings, started_unix_s=started)


def no_model(prep: Any) -> str:
    """Why a procedure cannot be planned for this cell: no model to simulate."""
    cell = prep.cell
    return (f"cell {cell.name!r} ({cell.source}) has no 'model:' section, and a plan runs the "
            "procedure on a simulated twin of the cell; fit one from an HPPC run (labctl "
            "analyze hppc RUN writes RUN/analysis/hppc/cell.yaml) and plan with --cell on it, "
            "or add a 'model:' to the cell file (docs/cells.md)")


def _too_fast(proc: Any, ceilings: Ceilings) -> str | None:
    from labctl.plan.bounds import too_fast_logging

    return too_fast_logging(proc.extra.get("tree"), ceilings)


def enforce_ceilings(prep: Any, *, need_report: bool = True,
                     ceilings: Ceilings | None = None) -> Any:
    """Refuse (LabctlError, exit 2) a procedure whose plan passes a ceiling; returns the
    (rough) plan's report.

    The plan is a rough one (`plan_prepared(rough=True)`), made again in full only when it
    lands within 20 % of a ceiling. With `need_report=False` a procedure whose text alone
    bounds it below the ceilings (every step timed or capped, loops counted) is not
    planned at all: returns None; nor, in the `labctl` command, is one whose inputs
    passed clearly before (plan/verdicts.py).
    """
    from labctl.plan.bounds import static_bounds

    ceilings = ceilings or Ceilings()
    proc = prep.procedure
    if prep.cell.model is None:
        # A real bench may well run a cell nobody has modelled: the ceilings are then
        # checked on what the procedure's text alone guarantees, and there is no estimate.
        report = _unplanned(prep, ceilings)
        if report.refusal is not None:
            raise LabctlError(f"{prep.procedure_path}: refused: {report.refusal}")
        return report
    kept, key, checked_since_ns = None, None, time.time_ns()
    if not need_report:
        too_fast = _too_fast(proc, ceilings)
        t_max, n_max = static_bounds(proc.extra.get("tree"))
        if too_fast is None and t_max <= ceilings.duration_s and n_max <= ceilings.samples:
            return None
        from labctl.plan import verdicts

        kept = verdicts.active()  # the labctl command's: these inputs may have passed before
        key = verdicts.inputs_key(prep, ceilings) if kept is not None else None
        if key is not None and kept.passed(key):
            return None
    # A rough plan decides unless near a ceiling. Planning stops after CHECK_BUDGET_S (a
    # long BMS or EIS session simulates slowly): what was planned by then is still checked,
    # and the absurd procedures this guards against are counted, not simulated, at once.
    report = plan_prepared(prep, ceilings, rough=True, budget_s=CHECK_BUDGET_S)
    near = ceilings.near(report)
    if near and report.status != "truncated":
        report = plan_prepared(prep, ceilings, budget_s=CHECK_BUDGET_S)
    if key is not None and report.refusal is None and not near \
            and report.status in verdicts.KEEP_STATUSES:
        kept.keep(key, checked_since_ns)  # a clear pass only (see plan/verdicts.py)
    if report.refusal is not None:
        from labctl.plan.report import one_line

        estimate = "" if report.status == "refused" else f" ({one_line(report)})"
        raise LabctlError(f"{prep.procedure_path}: refused: {report.refusal}{estimate}")
    return report


def _unplanned(prep: Any, ceilings: Ceilings) -> Any:
    from labctl.plan.bounds import text_lower_bounds
    from labctl.plan.report import unplanned_report

    too_fast = _too_fast(prep.procedure, ceilings)
    duration_s, n_samples = text_lower_bounds(prep.procedure.extra.get("tree"))
    return unplanned_report(prep, ceilings, no_model(prep), duration_s, n_samples,
                            refused=too_fast)


__all__ = ["Ceilings", "enforce_ceilings", "plan_prepared"]
