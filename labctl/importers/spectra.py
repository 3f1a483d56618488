"""Impedance spectrum files (Gamry .DTA, EC-Lab PEIS/GEIS .mpt, ZView .z, Autolab/NOVA,
Parstat, VersaStudio, CH Instruments, generic CSV) -> a `spectra` record table.

The layouts are read by the EIS analysis' own reader
(`labctl.analysis.eis.io.read_spectrum_file`), so `labctl import` and
`labctl analyze eis FILE` accept the same files. The run has no timeseries; each
spectrum is one step_index of the `spectra` table, as the `eis` step records it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from labctl.errors import LabctlError, ValidationError
from labctl.importers.base import Parsed

FMT = "eis"


def spectrum_records(frequency_hz: np.ndarray, z_real_ohm: np.ndarray, z_imag_ohm: np.ndarray,
                     step_index: int = 1, test_time_s: float = 0.0, label: str = "",
                     extra: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """One spectrum as `spectra` record columns (Z = Z' + j Z'', capacitive Z'' < 0)."""
    n = len(frequency_hz)
    cols = {
        "step_index": np.full(n, step_index, dtype=np.int64),
        "cycle_index": np.ones(n, dtype=np.int64),
        "test_time_s": np.full(n, float(test_time_s)),
        "point": np.arange(n, dtype=np.int64),
        "frequency_hz": np.asarray(frequency_hz, dtype=np.float64),
        "z_real_ohm": np.asarray(z_real_ohm, dtype=np.float64),
        "z_imag_ohm": np.asarray(z_imag_ohm, dtype=np.float64),
        "label": np.array([label] * n, dtype=object),
    }
    for name, value in (extra or {}).items():
        cols[name] = np.full(n, float(value))
    return cols


def concat_records(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def read(path: Path, data: bytes) -> Parsed:
    from labctl.analysis.eis.io import read_spectrum_file
    from labctl.importers.base import ImportFailure, fail

    try:
        sf = read_spectrum_file(path)
    except ImportFailure:
        raise
    except ValidationError as exc:  # located problems stay located; say what else is read
        from labctl.importers.registry import FORMAT_NAMES

        accepted = f" Accepted formats: {', '.join(FORMAT_NAMES)} (see docs/import.md)"
        raise ValidationError([replace(p, message=p.message.rstrip(".") + "." + accepted)
                               for p in exc.problems]) from None
    except LabctlError as exc:  # the reader names file and line; add the formats accepted
        import re

        text = str(exc).removeprefix(str(path))
        where = re.match(r"^:(\d+):\s*", text)
        raise fail(path, f"line {where.group(1)}" if where else "",
                   text[where.end():] if where else text.lstrip(": "), FMT) from None
    s = sf.spectrum
    parsed = Parsed(FMT, np.empty(0), np.empty(0), np.empty(0))
    parsed.records["spectra"] = spectrum_records(s.frequency_hz, s.z_real_ohm, s.z_imag_ohm,
                                                 label=Path(path).stem)
    parsed.conversions += [
        f"spectrum read as the {sf.layout!r} layout by labctl.analysis.eis.io",
        f"Z'' from column {sf.imag_column!r}: " + (
            "it holds -Im Z, negated to Im Z" if sf.imag_negated else "it holds Im Z, kept")
        + f" (sign from the {sf.imag_sign_from})",
    ]
    parsed.metadata["layout"] = sf.layout
    parsed.source_rows = len(s.frequency_hz)
    return parsed
