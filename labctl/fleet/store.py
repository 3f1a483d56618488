"""A results store as one dataset: `labctl.open_store(path)`.

`store.runs` is a pandas catalog read from the run.json files only (one row per
run). `store.timeseries()`, `.steps()`, `.cycles()`, `.records(name)` and
`.analysis(name, table)` are lazy dask DataFrames with one partition per run and a
`run_id` column; nothing is read until `.compute()` (or `.head()`).

Filters are pyarrow's (a list of `(column, op, value)` tuples ANDed, or a list of
such lists ORed). A filter on a catalog column (`run_id`, `procedure`, `cell`,
`station`, `status`, `source`, `bench`, `host`) picks runs before any table is
opened; the others go to pyarrow, which skips row groups by their statistics and
drops the remaining rows that do not match, so a store is never loaded whole.

The path may be a local folder or any URL fsspec understands (a network share,
`s3://...`, `memory://...`): listing and reading go through fsspec.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import Any

import pandas as pd

from labctl.errors import LabctlError
from labctl.store.catalog import iso_time, number_or_none

CATALOG_COLUMNS = ["run_id", "path", "procedure", "cell", "cell_name", "station", "status", "reason",
                   "started", "ended", "started_unix_s", "ended_unix_s", "duration_s",
                   "n_samples", "source", "bench", "worker", "host"]
# Filters on these columns pick runs from the catalog; any other goes to the tables.
RUN_FILTER_COLUMNS = ("run_id", "procedure", "cell", "cell_name", "station", "status", "source",
                      "bench", "worker", "host")
_OPS = ("==", "=", "!=", "<", "<=", ">", ">=", "in", "not in")

Filter = tuple[str, str, Any]


def _source_text(source: Any) -> str | None:
    """`format: file name` of an imported run's `source` section (None for recorded runs)."""
    if source is None:
        return None
    if not isinstance(source, dict):
        return str(source)
    name = next((source[k] for k in ("file", "file_name", "original_file", "name", "path")
                 if source.get(k)), None)
    fmt = source.get("format")
    parts = [str(p) for p in (fmt, posixpath.basename(str(name)) if name else None) if p]
    return ": ".join(parts) or json.dumps(source, default=str)[:200]


def catalog_row(path: str, meta: dict) -> dict[str, Any]:
    """One catalog row from a run.json (missing or odd fields become None)."""
    from labctl.store.rundir import effective_status

    def section(key: str) -> dict:
        value = meta.get(key)
        return value if isinstance(value, dict) else {}

    summary, fleet = section("summary"), section("fleet")
    started, ended = number_or_none(meta.get("started_unix_s")), number_or_none(meta.get("ended_unix_s"))
    return {
        "run_id": str(meta.get("run_id") or posixpath.basename(path)),
        "path": path,
        "procedure": section("procedure").get("name"),
        "cell": _cell_id(section("cell")),
        "cell_name": section("cell").get("name"),
        "station": section("station").get("name"),
        "status": effective_status(meta),
        "reason": meta.get("reason"),
        "started": iso_time(started),
        "ended": iso_time(ended),
        "started_unix_s": started,
        "ended_unix_s": ended,
        "duration_s": number_or_none(summary.get("duration_s")),
        "n_samples": summary.get("n_samples"),
        "source": _source_text(meta.get("source")),
        "bench": fleet.get("bench"),
        "worker": fleet.get("worker"),
        "host": meta.get("host"),
    }


def _cell_id(cell: dict) -> str | None:
    """The cell as users name it on the command line (`--cell nmc-1p95ah`): its cell file's
    stem; the cell's display name where no file is known (e.g. an imported run)."""
    file = cell.get("file")
    if isinstance(file, str) and file:
        return posixpath.splitext(posixpath.basename(file.replace("\\", "/")))[0]
    return cell.get("name")


def _match(value: Any, op: str, operand: Any) -> bool:
    try:
        if value is not None and pd.isna(value):  # pandas keeps a missing text as NaN
            value = None
    except (TypeError, ValueError):
        pass
    if op in ("==", "="):
        return value == operand
    if op == "!=":
        return value != operand
    if op == "in":
        return value in operand
    if op == "not in":
        return value not in operand
    if value is None:
        return False
    try:
        return {"<": value < operand, "<=": value <= operand, ">": value > operand,
                ">=": value >= operand}[op]
    except TypeError:
        return False


def _normalise(filters: Any) -> list[list[Filter]]:
    """Filters as a list of conjunctions (disjunctive normal form), checked."""
    if not filters:
        return []
    if not isinstance(filters, (list, tuple)):
        raise LabctlError("filters: a list of (column, op, value) tuples, or a list of such lists")
    dnf = [list(f) for f in filters] if all(isinstance(f, list) for f in filters) else [list(filters)]
    for conj in dnf:
        for item in conj:
            if not (isinstance(item, (tuple, list)) and len(item) == 3 and isinstance(item[0], str)):
                raise LabctlError(f"filter {item!r}: write it as (column, op, value)")
            if item[1] not in _OPS:
                raise LabctlError(f"filter {tuple(item)!r}: unknown operator {item[1]!r}; "
                                  f"allowed: {', '.join(_OPS)}")
    return [[tuple(item) for item in conj] for conj in dnf]


def _table_filter(conjunctions: list[list[Filter]]) -> Any:
    """The pyarrow filter of the conjunctions that matched a run (None: every row)."""
    if not conjunctions or any(not c for c in conjunctions):
        return None
    return conjunctions[0] if len(conjunctions) == 1 else conjunctions


def _read_one(part: dict[str, Any]) -> pd.DataFrame:
    """One run's table (one partition): read with projection and filters, add run_id."""
    import pyarrow.parquet as pq

    fs, meta = part["fs"], part["meta"]
    columns = [c for c in meta.columns if c != "run_id"]
    try:
        table = pq.read_table(part["file"], filesystem=fs, columns=part["read_columns"],
                              filters=part["filter"])
        df = table.to_pandas()
    except FileNotFoundError:
        df = _from_journal(part)
    df = df.reindex(columns=columns)
    df.insert(0, "run_id", pd.Series([part["run_id"]] * len(df), index=df.index,
                                     dtype=meta["run_id"].dtype))
    return df.astype(meta.dtypes.to_dict(), errors="ignore").reset_index(drop=True)


def _from_journal(part: dict[str, Any]) -> pd.DataFrame:
    """A local run whose tables were never built (crashed, still running): from its journal."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labctl.store.run import open_run

    if not part["local"] or part["kind"] not in ("timeseries", "steps", "cycles"):
        return part["meta"].drop(columns="run_id").iloc[:0]
    df = getattr(open_run(part["run_path"]), part["kind"])
    if part["filter"] is not None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        df = table.filter(pq.filters_to_expression(part["filter"])).to_pandas()
    return df


class Store:
    """A results store: `runs` (catalog), `timeseries()`, `steps()`, `cycles()`,
    `records(name)`, `analysis(name, table)`."""

    def __init__(self, path: str, storage_options: dict | None = None):
        try:
            import fsspec
        except ImportError:
            raise LabctlError("reading a results store as a dataset needs fsspec and Dask: "
                              "pip install 'labctl[fleet]'") from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(str(path), **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise LabctlError(f"{path}: cannot open the results store ({exc})") from None
        self.root = self.root.rstrip("/") or "/"
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        if not self.fs.isdir(self.root):
            raise LabctlError(f"{path}: no such results store (not a folder)")
        self.runs = self._catalog()

    def _catalog(self) -> pd.DataFrame:
        files = sorted(self.fs.glob(posixpath.join(self.root, "*", "run.json")))
        rows = []
        for file, data in zip(files, self._read_all(files), strict=True):
            try:
                meta = json.loads(data) if data is not None else None
            except ValueError:
                meta = None
            if isinstance(meta, dict):  # an unreadable run.json is left out, as `labctl ls` does
                rows.append(catalog_row(posixpath.dirname(file), meta))
        df = pd.DataFrame(rows, columns=CATALOG_COLUMNS)
        if len(df):
            df = df.sort_values(["started_unix_s", "run_id"], na_position="first", kind="stable")
        return df.reset_index(drop=True)

    def _read_all(self, files: list[str]) -> list[bytes | None]:
        """The bytes of many small files; in threads, since on a network share each read
        is a round trip (100,000 run.json files one after another take minutes)."""
        from concurrent.futures import ThreadPoolExecutor

        def read(file: str) -> bytes | None:
            try:
                return self.fs.cat_file(file)
            except (OSError, ValueError):
                return None

        if len(files) < 64:
            return [read(f) for f in files]
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(read, files, chunksize=64))

    def refresh(self) -> Store:
        """Read the catalog again (runs started since)."""
        self.runs = self._catalog()
        return self

    # -- tables --------------------------------------------------------------------------

    def timeseries(self, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
        """Every run's samples (test_time_s, voltage_v, current_a, ...) with run_id."""
        return self._dataset("timeseries", "timeseries.parquet", columns, filters)

    def steps(self, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
        return self._dataset("steps", "steps.parquet", columns, filters)

    def cycles(self, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
        return self._dataset("cycles", "cycles.parquet", columns, filters)

    def records(self, table: str, columns: Sequence[str] | None = None,
                filters: Any = None) -> Any:
        """A record table (spectra, pressure, bms_checks...) of every run that has it."""
        _check_name(table)
        return self._dataset("records", f"records/{table}.parquet", columns, filters)

    def analysis(self, name: str, table: str, columns: Sequence[str] | None = None,
                 filters: Any = None) -> Any:
        """A table an analysis stored with each run (analysis/<name>/<table>.parquet)."""
        _check_name(name)
        _check_name(table)
        return self._dataset("analysis", f"analysis/{name}/{table}.parquet", columns, filters)

    def _dataset(self, kind: str, relative: str, columns: Sequence[str] | None,
                 filters: Any) -> Any:
        import dask.dataframe as dd

        dnf = _normalise(filters)
        chosen = []
        for row in self.runs.itertuples(index=False):
            matched = []
            for conj in dnf:
                run_part = [f for f in conj if f[0] in RUN_FILTER_COLUMNS]
                if all(_match(getattr(row, c), op, v) for c, op, v in run_part):
                    matched.append([f for f in conj if f[0] not in RUN_FILTER_COLUMNS])
            if dnf and not matched:
                continue
            file = posixpath.join(row.path, relative)
            if kind in ("records", "analysis") and not self.fs.exists(file):
                continue  # only runs that recorded that table
            chosen.append((row, file, _table_filter(matched)))
        meta = self._meta(kind, relative, chosen, columns)
        read_columns = None if columns is None else [c for c in columns if c != "run_id"]
        parts = [{"fs": self.fs, "file": file, "run_id": row.run_id, "run_path": row.path,
                  "kind": kind, "local": self.local, "meta": meta, "read_columns": read_columns,
                  "filter": flt} for row, file, flt in chosen]
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_map(_read_one, parts, meta=meta, label=f"labctl-{kind}",
                           enforce_metadata=False)

    def _meta(self, kind: str, relative: str, chosen: list, columns: Sequence[str] | None
              ) -> pd.DataFrame:
        """The empty frame every partition matches: the first table's schema (or the
        built-in column list when no run has the table yet)."""
        import pyarrow.parquet as pq

        schema = None
        for _row, file, _flt in chosen:
            try:
                schema = pq.read_schema(file, filesystem=self.fs)
                break
            except (FileNotFoundError, OSError):
                continue
        if schema is not None:
            empty = schema.empty_table().to_pandas()
        else:
            empty = self._meta_from_journal(kind, chosen)
        if columns is not None:
            missing = [c for c in columns if c != "run_id" and c not in empty.columns]
            if missing and schema is not None:
                raise LabctlError(f"{relative}: no column {', '.join(map(repr, missing))}; "
                                  f"columns: {', '.join(empty.columns)}")
            empty = empty.reindex(columns=[c for c in columns if c != "run_id"])
        empty.insert(0, "run_id", pd.Series([], dtype="string"))
        return empty


    def _meta_from_journal(self, kind: str, chosen: list) -> pd.DataFrame:
        """No run has the table as Parquet yet: the columns and dtypes of one built from
        a local run's journal (as `open_run` builds it), else the sample columns."""
        from labctl.records import SAMPLE_COLUMNS

        if self.local and kind in ("timeseries", "steps", "cycles"):
            from labctl.store.run import open_run

            for row, _file, _flt in chosen:
                try:
                    return getattr(open_run(row.path), kind).iloc[:0]
                except (LabctlError, OSError, ValueError):
                    continue
        if kind == "timeseries":
            return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in SAMPLE_COLUMNS.items()})
        return pd.DataFrame()


def _check_name(name: str) -> None:
    import re

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", str(name)):
        raise LabctlError(f"table name {name!r}: use letters, digits, '.', '_' and '-'")


def open_store(path: Any, storage_options: dict | None = None) -> Store:
    """Open a results store (a folder, or any fsspec URL) as one dataset."""
    try:
        import dask.dataframe  # noqa: F401
    except ImportError:
        raise LabctlError("labctl.open_store needs Dask: pip install 'labctl[fleet]'") from None
    return Store(str(path), storage_options)
