"""A Dask cluster of 2 worker processes on loopback (one per bench), and a small store.

The cluster is a SpecCluster so that each worker has its own bench resource
(`bench-A=1`, `bench-B=1`), as two bench PCs would; the analyses ignore resources,
so the same two workers serve the fleet-analysis tests. Built once per session.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from tests.support import REPO

BENCHES = ("bench-A", "bench-B")


@pytest.fixture(scope="session")
def dask_cluster():
    from distributed import Client, Nanny, Scheduler, SpecCluster

    workers = {name: {"cls": Nanny, "options": {"nthreads": 1, "resources": {name: 1},
                                                 "host": "127.0.0.1"}}
               for name in BENCHES}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1",
                                               "dashboard_address": "127.0.0.1:0"}}
    cluster = SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(len(BENCHES), timeout=60)
    yield cluster, client
    client.close()
    cluster.close(timeout=20)


@pytest.fixture
def client(dask_cluster):
    _, client = dask_cluster
    client.wait_for_workers(len(BENCHES), timeout=60)  # a test may have killed one
    return client


def worker_pids(client) -> dict[str, int]:
    """Worker name -> pid of its process (asked of the processes themselves)."""
    import os

    pids = client.run(os.getpid)
    names = {addr: str(info["name"]) for addr, info in client.scheduler_info()["workers"].items()}
    return {names[addr]: pid for addr, pid in pids.items() if addr in names}


# 4 LFP cells and 1 NMC cell through the same quick cycling procedure: the NMC
# cell's capacity (1.95 Ah nominal vs 2.2 Ah) must stand out of the lot.
CELLS = ("lfp-2p2ah", "lfp-2p2ah", "lfp-2p2ah", "lfp-2p2ah", "nmc-1p95ah")


@pytest.fixture(scope="session")
def base_store(tmp_path_factory) -> Path:
    from labctl.engine.session import prepare, start_run

    root = tmp_path_factory.mktemp("fleet") / "results"
    for cell in CELLS:
        prep = prepare(REPO / "procedures" / "cycling.yaml", cell_ref=cell,
                       params={"n_cycles": "2", "rest_min": "2"})
        assert start_run(prep, results_root=root).status == "completed"
    return root


@pytest.fixture
def store_copy(base_store, tmp_path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(base_store, target)
    return target
