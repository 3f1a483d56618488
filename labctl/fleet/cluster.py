"""A Dask client: a LocalCluster of worker processes on loopback, or an existing scheduler."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labctl.errors import LabctlError

CONNECT_TIMEOUT_S = 10


def need_dask() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise LabctlError("fleet commands need Dask distributed: pip install 'labctl[fleet]'")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@contextmanager
def fleet_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A connected `distributed.Client`; the LocalCluster (if any) is closed after."""
    need_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise LabctlError(f"--scheduler {scheduler}: cannot connect ({exc}); is "
                              "`dask scheduler` running there?") from None
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    n = workers or default_workers()
    # Processes, one thread each: the analyses are CPU-bound Python (one GIL per worker).
    # Everything listens on loopback, on free ports (several clusters may run at once).
    # The workers' statistical profiler samples every thread 100 times a second: about
    # 10 % of a worker's CPU on these short tasks (bench/fleet.py), so it is off here.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one (it needs bokeh)."""
    if importlib.util.find_spec("bokeh") is None:
        return None
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:
        return None
    return client.dashboard_link if "dashboard" in services else None
