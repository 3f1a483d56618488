"""labctl: battery test bench automation.

In a notebook:

    import labctl
    run = labctl.open_run("results/20261125-101500-quickstart-LFP-2.2-Ah-1a2b")
    run = labctl.open_run("20261125-1015")  # a run-id prefix in ./results
    run.timeseries  # pandas DataFrame: test_time_s, voltage_v, current_a, ...

    store = labctl.open_store("results")  # every run (needs labctl[fleet]: Dask)
    store.runs  # catalog: one row per run
    store.cycles(filters=[("cell", "==", "lfp-2p2ah")]).compute()
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "open_run", "open_store"]


def __getattr__(name: str) -> Any:
    # importlib.metadata costs ~10 ms at start-up: look the version up on first use.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("labctl")
        except PackageNotFoundError:  # running from a source tree without an install
            found = "0+unknown"
        globals()["__version__"] = found  # looked up once
        return found
    raise AttributeError(f"module 'labctl' has no attribute {name!r}")


def open_run(path: Any, results: Any = "results") -> Any:
    """Open a run: its directory, or a run-id prefix as `labctl show` takes it (looked up
    in `results`): `.meta`, `.timeseries`, `.steps`, `.cycles` (pandas)."""
    from labctl.store.run import open_run as _open_run

    return _open_run(path, results)


def open_store(path: Any, storage_options: dict | None = None) -> Any:
    """Open a results store (folder or fsspec URL) as one dataset: `.runs` (pandas
    catalog), `.timeseries()`, `.steps()`, `.cycles()`, `.records(name)` (lazy dask)."""
    from labctl.fleet.store import open_store as _open_store

    return _open_store(path, storage_options)
