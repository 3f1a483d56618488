"""labctl: battery test bench automation.

In a notebook:

    import labctl
    run = labctl.open_run("results/20261125-101500-quickstart-lfp-2p2ah-1a2b")
    run.timeseries  # pandas DataFrame: test_time_s, voltage_v, current_a, ...

    store = labctl.open_store("results")  # every run (needs labctl[fleet]: Dask)
    store.runs  # catalog: one row per run
    store.cycles(filters=[("cell", "==", "LFP 2.2 Ah")]).compute()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("labctl")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["__version__", "open_run", "open_store"]


def open_run(path: Any) -> Any:
    """Open a run directory: `.meta`, `.timeseries`, `.steps`, `.cycles` (pandas)."""
    from labctl.store.run import open_run as _open_run

    return _open_run(path)


def open_store(path: Any, storage_options: dict | None = None) -> Any:
    """Open a results store (folder or fsspec URL) as one dataset: `.runs` (pandas
    catalog), `.timeseries()`, `.steps()`, `.cycles()`, `.records(name)` (lazy dask)."""
    from labctl.fleet.store import open_store as _open_store

    return _open_store(path, storage_options)
