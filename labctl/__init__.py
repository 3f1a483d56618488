"""labctl: battery test bench automation.

In a notebook:

    import labctl
    run = labctl.open_run("results/20261125-101500-quickstart-LFP-2.2-Ah-1a2b")
    run = labctl.open_run("20261125-1015")  # a run-id prefix in ./results
    run.timeseries  # pandas DataFrame: test_time_s, voltage_v, current_a, ...
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("labctl")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["__version__", "open_run"]


def open_run(path: Any, results: Any = "results") -> Any:
    """Open a run: its directory, or a run-id prefix as `labctl show` takes it (looked up
    in `results`): `.meta`, `.timeseries`, `.steps`, `.cycles` (pandas)."""
    from labctl.store.run import open_run as _open_run

    return _open_run(path, results)
