"""Check: what `labctl validate` says about a Start-form choice, made in a child process.

The check is validate's own calls (`engine.prepare.prepare`, then
`labctl.plan.enforce_ceilings`: a rough plan with a few seconds' budget). It runs in
`python -m labctl.console.checking`, not in the console: seconds of CPU-bound
Python in the console's process would hold the GIL and stall every other page and
event stream meanwhile. The console thread that waits for the child only blocks
in waitpid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError, Problem, ValidationError

CHECK_TIMEOUT_S = 30.0  # prepare, then the rough plan's 3 s budget: seconds, even niced


def check(procedure: Path, station: Path, cell: str, params: dict[str, str]
          ) -> dict[str, Any]:
    """Validate's verdict in this process: {"problems", "estimate", "plannable"}.

    `plannable`: prepare passed, so `labctl plan` can show the plan (also when a ceiling
    refused it: the plan shows why). `estimate`: the rough plan's numbers when it passed.
    """
    from labctl.engine.prepare import prepare
    from labctl.plan import enforce_ceilings

    try:
        prep = prepare(procedure, station_path=station, cell_ref=cell, params=params)
    except ValidationError as exc:
        return {"problems": [p.as_dict() for p in exc.problems], "estimate": None,
                "plannable": False}
    except LabctlError as exc:
        return {"problems": [_located(exc, procedure)], "estimate": None, "plannable": False}
    try:
        report = enforce_ceilings(prep)
    except ValidationError as exc:
        return {"problems": [p.as_dict() for p in exc.problems], "estimate": None,
                "plannable": False}
    except LabctlError as exc:  # refused past a ceiling: the full plan says why
        return {"problems": [_located(exc, procedure)], "estimate": None,
                "plannable": True}
    return {"problems": [], "estimate": _estimate(report), "plannable": True}


def _located(exc: LabctlError, procedure: Path) -> dict[str, Any]:
    """A LabctlError as a problem; "PROC: refused: ..." names its file in the file field."""
    message = str(exc)
    for name in (str(procedure), str(Path(procedure).resolve())):
        if message.startswith(name + ": "):
            return Problem(name, None, None, "", message[len(name) + 2:]).as_dict()
    return Problem(None, None, None, "", message).as_dict()


def _estimate(report: Any) -> dict[str, Any]:
    """The rough plan's figures (labctl validate's estimate line is built from these)."""
    return {"status": report.status, "reason": report.reason,
            "duration_s": report.run_duration_s,
            "n_samples": report.run_samples, "disk_bytes": report.run_disk_bytes,
            "approximate": report.approximate, "warnings": list(report.warnings)}


def check_in_child(procedure: Path, station: Path, cell: str, params: dict[str, str],
                   timeout_s: float = CHECK_TIMEOUT_S,
                   cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """`check` in `python -m labctl.console.checking` (the console never plans itself), at
    low priority like the plans (the benches come first); killed when `cancelled()` (the
    console is stopping) or after `timeout_s`."""
    from labctl.console.estimate import run_niced

    request = json.dumps({"procedure": str(procedure), "station": str(station), "cell": cell,
                          "params": params})
    try:
        status, stdout, stderr = run_niced([sys.executable, "-m", "labctl.console.checking",
                                            request], timeout_s=timeout_s, cancelled=cancelled)
    except OSError as exc:
        return _failed(f"the check could not start: {exc}")
    if status is None:
        return _failed(f"the check was stopped (longer than {timeout_s:g} s, or the console "
                       "is stopping)")
    try:
        verdict = json.loads(stdout)
        if isinstance(verdict, dict) and "problems" in verdict:
            return verdict
    except ValueError:
        pass
    return _failed(f"the check failed (exit status {status}): "
                   + (stderr.strip()[-2000:] or "no output"))


def _failed(message: str) -> dict[str, Any]:
    return {"problems": [Problem(None, None, None, "", message).as_dict()], "estimate": None,
            "plannable": False}


def main() -> None:
    """The child: a choice as JSON (its argument), the verdict as JSON on stdout.

    While checking, whatever the procedure prints (a Python procedure may) goes to stderr:
    stdout carries the verdict alone."""
    import os

    request = json.loads(sys.argv[1])
    verdict_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        verdict = check(Path(request["procedure"]), Path(request["station"]), request["cell"],
                        dict(request.get("params") or {}))
    except Exception as exc:  # shown to the operator as the check's one problem
        verdict = _failed(f"internal error while checking: {type(exc).__name__}: {exc}")
    finally:
        sys.stdout.flush()
    from labctl.console.estimate import finite

    with os.fdopen(verdict_fd, "w") as out:
        out.write(json.dumps(finite(verdict), default=str, allow_nan=False))


if __name__ == "__main__":
    main()
