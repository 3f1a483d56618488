"""Fleets of runs and benches on Dask distributed (docs/scale-out.md).

- `store.py`: `labctl.open_store(path)`, the results store as one dataset (a pandas
  catalog of runs, lazy dask DataFrames over their Parquet tables).
- `analyze.py` + `tasks.py` + `fleet_table.py`: `labctl analyze NAME --all`, one Dask task
  per run, a fleet table with outliers flagged and a plot.
- `cluster.py`: a LocalCluster of processes (loopback only) or an existing scheduler.
- `benches.py`: `labctl run --batch FILE --scheduler ...`, channel jobs pinned to the
  workers that own their bench (Dask worker resources), never retried elsewhere.

Dask is an optional extra (`pip install labctl[fleet]`): nothing here is imported
unless a fleet feature is used.
"""
