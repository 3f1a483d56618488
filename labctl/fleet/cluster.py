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
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


# Dask's housekeeping, measured with bench/fleet.py on 2 workers: with the defaults the
# workers' other threads and the client (with the LocalCluster's scheduler and nannies)
# took ~0.03 CPU s per 0.21 s analysis, 13 %, which a 2-core machine pays in speed-up.
# With these they take ~0.01 s.
LOCAL_CLUSTER_CONFIG = {
    # The statistical profiler samples every thread 100 times a second (~10 %).
    "distributed.worker.profile.enabled": False,
    # Event-loop watchdog: a tick every 20 ms in every process, only to warn when the
    # loop was blocked for seconds.
    "distributed.admin.tick.interval": "1s",
    # CPU/memory/network samples for the dashboard's plots, every 0.5 s in every process.
    "distributed.admin.system-monitor.interval": "5s",
    # Memory limits are checked every 100 ms; analyses do not grow that fast.
    "distributed.worker.memory.monitor-interval": "1s",
}


def worker_slots(client: Any) -> int:
    """How many tasks the cluster runs at once (its workers' threads), at least 1."""
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:
        return 1
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one (it needs bokeh)."""
    if importlib.util.find_spec("bokeh") is None:
        return None
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:
        return None
    return client.dashboard_link if "dashboard" in services else None
