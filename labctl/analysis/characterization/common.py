"""What the run-level analyses share: opening a run with its cell, CSV bytes, figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError


@dataclass(frozen=True)
class RunData:
    path: Path
    run: Any  # labctl.store.run.Run
    cell: CellSpec | None  # the cell file the run used (inputs/cell.yaml), if loadable

    @property
    def timeseries(self) -> pd.DataFrame:
        return self.run.timeseries

    @property
    def steps(self) -> pd.DataFrame:
        return self.run.steps


def open_run_data(run_dir: str | Path) -> RunData:
    """The run and the cell it ran on (None when inputs/cell.yaml cannot be loaded)."""
    from labctl.cells import load_cell
    from labctl.store.run import open_run

    run = open_run(run_dir)
    cell = None
    path = Path(run.path) / "inputs" / "cell.yaml"
    if path.is_file():
        try:
            cell = load_cell(path)
        except LabctlError:
            cell = None  # the analyses still work from the samples alone
    if run.timeseries.empty:
        raise LabctlError(f"{run.path}: the run has no samples to analyse")
    return RunData(Path(run.path), run, cell)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as CSV (NaN as empty fields), for save_analysis(files=...)."""
    return df.to_csv(index=False, float_format="%.9g").encode("utf-8")


def long_csv_bytes(df: pd.DataFrame, columns: list[str]) -> bytes:
    """The cell-file long format (ecm.cell_model.write_long_csv) as bytes."""
    import tempfile

    from labctl.analysis.ecm.cell_model import write_long_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = write_long_csv(df, columns, Path(tmp) / "t.csv")
        return path.read_bytes()


def figure(nrows: int = 1, figsize: tuple[float, float] = (7.0, 4.5)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, 1, figsize=figsize, sharex=nrows > 1)
    return fig, axes


def finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None
