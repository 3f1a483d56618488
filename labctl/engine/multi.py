"""Several channels at once: one run (and one run directory) per channel, in parallel.

Every channel is validated before any channel starts. Each runs in its own
thread with its own station instance, engine and RunControl, so one channel's
abort, fault or slow instrument never stalls or stops another. With
`processes > 1` the channels are spread over that many worker processes (forked,
each running its share in threads; the channels of one chamber share a worker, where
their claims on it are arbitrated): the simulator and the journal encoding are
CPU work, so on a multi-core PC processes multiply throughput where threads share
one interpreter lock. Control works the same either way: `labctl stop/pause/
continue` use each run directory's command queue, and Ctrl-C reaches every worker.
A batch file maps channels to procedures, cells and parameters (docs/procedures.md,
"Batch files"; example: procedures/examples/batch.yaml):

```yaml
station: instruments/sim.yaml      # default for every channel
bench: A                           # default bench (only used with --scheduler)
channels:
  - {channel: 1, procedure: procedures/cycling.yaml, cell: lfp-2p2ah, parameters: {n_cycles: 5}}
  - {channel: 2, procedure: procedures/capacity.yaml, cell: nmc-1p95ah, bench: B}
```

`parameters` is the key procedures use; `params` is accepted as an alias. Relative
paths are read from the batch file's folder (or the working folder, where they exist).
With `labctl run --batch FILE --scheduler tcp://HOST:8786` each channel runs on the
Dask worker that holds its bench's resource (labctl/fleet/benches.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Empty
from typing import Any

from labctl.engine.control import RunControl
from labctl.engine.session import Prepared, RunOutcome, prepare, start_run
from labctl.engine.sharing import chamber_key
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.yamlio import load_file

_JOB_KEYS = {"channel", "procedure", "cell", "parameters", "params", "station", "bench"}
_TOP_KEYS = {"station", "bench", "channels"}


@dataclass
class ChannelJob:
    channel: str
    procedure: str
    cell: str | None = None
    station: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    bench: str | None = None  # the bench (Dask worker resource) that owns this channel


def load_batch(path: str | Path) -> list[ChannelJob]:
    """Read a batch file; every problem names the file, line and field."""
    doc = load_file(path)
    data = doc.data
    problems: list[Problem] = []
    if not isinstance(data, dict) or not isinstance(data.get("channels"), list) or not data["channels"]:
        raise ValidationError([doc.problem(("channels",), "a batch file needs 'channels:', a list of "
                                           "{channel, procedure, cell, parameters}")])
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(doc.problem((key,), f"unknown field {key!r}; allowed: "
                                        f"{', '.join(sorted(_TOP_KEYS))}"))
    base = Path(path).parent
    default_station = data.get("station")
    default_bench = data.get("bench")
    jobs: list[ChannelJob] = []
    seen: set[tuple[str, str]] = set()
    for k, entry in enumerate(data["channels"]):
        where = ("channels", k)
        if not isinstance(entry, dict):
            problems.append(doc.problem(where, "each channel is a mapping with channel and procedure"))
            continue
        for key in entry:
            if key not in _JOB_KEYS:
                problems.append(doc.problem(where + (key,), f"unknown field {key!r}; allowed: "
                                            f"{', '.join(sorted(_JOB_KEYS))}"))
        if "channel" not in entry or "procedure" not in entry:
            problems.append(doc.problem(where, "needs 'channel' and 'procedure'"))
            continue
        channel = str(entry["channel"])
        bench = entry.get("bench", default_bench)
        # Channel numbers belong to a bench: channel 1 of bench A is not channel 1 of B.
        slot = (str(bench), channel)
        if slot in seen:
            on = f" of bench {bench}" if bench is not None else ""
            problems.append(doc.problem(where + ("channel",),
                                        f"channel {channel}{on} is listed twice"))
        seen.add(slot)
        if "parameters" in entry and "params" in entry:
            problems.append(doc.problem(where + ("params",), "give 'parameters' or its alias "
                                        "'params', not both"))
        key = "parameters" if "parameters" in entry else "params"
        params = entry.get(key) or {}
        if not isinstance(params, dict):
            problems.append(doc.problem(where + (key,), "must map parameter names to values"))
            params = {}
        station = entry.get("station", default_station)
        if bench is not None and not (isinstance(bench, (str, int)) and str(bench).strip()):
            problems.append(doc.problem(where + ("bench",), "a bench name such as A or bench-A"))
            bench = None
        jobs.append(ChannelJob(
            channel=channel,
            procedure=str(_relative(base, entry["procedure"])),
            cell=None if entry.get("cell") is None else str(entry["cell"]),
            station=None if station is None else str(_relative(base, station)),
            params={str(k2): str(v) for k2, v in params.items()},
            bench=None if bench is None else str(bench).strip(),
        ))
    if problems:
        raise ValidationError(problems)
    return jobs


def _relative(base: Path, value: Any) -> Path:
    p = Path(str(value))
    return p if p.is_absolute() or p.exists() else base / p


def prepare_all(jobs: list[ChannelJob]) -> list[Prepared]:
    """Validate every channel first; nothing starts unless all are valid."""
    prepared, problems = [], []
    for job in jobs:
        try:
            prep = prepare(job.procedure, station_path=job.station, cell_ref=job.cell,
                           params=job.params)
        except ValidationError as exc:
            problems.extend(exc.problems)
            continue
        except LabctlError as exc:
            problems.append(Problem(job.procedure, None, None, f"channel {job.channel}", str(exc)))
            continue
        prepared.append(on_channel(prep, job.channel))
    if problems:
        raise ValidationError(problems)
    return prepared


def on_channel(prep: Prepared, channel: str) -> Prepared:
    """The same station with its cycler bound to `channel` (each channel its own instrument)."""
    spec = prep.station
    cycler = spec.instruments.get("cycler")
    if cycler is None:
        return prep
    settings = dict(cycler.settings, channel=channel)
    instruments = dict(spec.instruments, cycler=replace(cycler, settings=settings))
    return replace(prep, station=replace(spec, instruments=instruments))


CHANNELS_PER_PROCESS = 4


def default_processes(n_channels: int) -> int:
    """Worker processes for `n_channels`: at least one per core, and so many that each
    runs at most CHANNELS_PER_PROCESS channels. More threads than that in one
    interpreter queue on its lock (64 channels on 2 cores: 2 processes 0.66 M, 8 0.90 M,
    16 1.02 M, 32 0.87 M samples/s, bench/channels.py)."""
    cores = os.cpu_count() or 1
    wanted = max(cores, -(-n_channels // CHANNELS_PER_PROCESS))
    return max(1, min(n_channels, wanted))


def run_channels(
    prepared: list[Prepared],
    *,
    results_root: str | Path,
    controls: list[RunControl],
    speed: float | None = None,
    processes: int = 1,
) -> list[RunOutcome | Exception]:
    """Run every prepared channel in its own thread; returns outcomes in order.

    `processes > 1` spreads the channels over worker processes (see the module
    docstring); `controls` then only serve the parent's Ctrl-C handling.
    """
    shares = worker_shares(prepared, processes)
    if len(shares) > 1 and "fork" in mp.get_all_start_methods():
        return _run_in_processes(prepared, results_root, speed, shares, controls)
    return _run_in_threads(prepared, results_root, controls, speed)


def worker_shares(prepared: list[Prepared], processes: int) -> list[list[int]]:
    """The channels (indices) each of at most `processes` workers runs, as evenly as
    possible. The channels in a chamber that any of them drives stay in one worker:
    their claims on it (`engine/sharing.py`) are arbitrated within a process (two
    processes would each set it their own way), and a simulated chamber is one per
    process (its temperature reaches only the cells simulated beside it)."""
    driven = {chamber_key(p.station) for p in prepared if _may_drive_chamber(p)}
    groups: dict[Any, list[int]] = {}
    for k, prep in enumerate(prepared):
        key = chamber_key(prep.station)
        groups.setdefault(key if key is not None and key in driven else ("channel", k),
                          []).append(k)
    shares: list[list[int]] = [[] for _ in range(max(1, min(int(processes), len(groups))))]
    for members in sorted(groups.values(), key=len, reverse=True):  # stable: in order
        min(shares, key=len).extend(members)
    return [sorted(share) for share in shares]


def _may_drive_chamber(prep: Prepared) -> bool:
    # A YAML procedure's roles are known from its steps; a Python one may yield a chamber
    # step without declaring `requires: [chamber]`.
    proc = prep.procedure
    return "chamber" in proc.required_roles or proc.extra.get("format") == "python"


def _run_in_threads(prepared: list[Prepared], results_root: str | Path,
                    controls: list[RunControl], speed: float | None
                    ) -> list[RunOutcome | Exception]:
    outcomes: list[RunOutcome | Exception | None] = [None] * len(prepared)

    def work(k: int) -> None:
        try:
            outcomes[k] = start_run(prepared[k], results_root=results_root, control=controls[k],
                                    speed=speed)
        except Exception as exc:  # reported per channel; the others carry on
            outcomes[k] = exc

    threads = [threading.Thread(target=work, args=(k,), name=f"labctl-channel-{k}", daemon=True)
               for k in range(len(prepared))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)  # short joins keep the main thread responsive to Ctrl-C
    return [o if o is not None else LabctlError("channel did not finish") for o in outcomes]


def _worker(prepared: list[Prepared], indices: list[int], results_root: str | Path,
            speed: float | None, queue: Any) -> None:
    """A worker process: its share of the channels in threads; outcomes go back by queue."""
    from labctl.engine.control import signals_abort

    controls = [RunControl() for _ in indices]
    mine = [prepared[k] for k in indices]
    with signals_abort(*controls):
        outcomes = _run_in_threads(mine, results_root, controls, speed)
    for k, outcome in zip(indices, outcomes, strict=True):
        if isinstance(outcome, Exception):
            queue.put((k, None, f"{type(outcome).__name__}: {outcome}"))
        else:
            queue.put((k, outcome, None))


def _run_in_processes(prepared: list[Prepared], results_root: str | Path,
                      speed: float | None, shares: list[list[int]], controls: list[RunControl]
                      ) -> list[RunOutcome | Exception]:
    # Fork, not spawn: compiled procedures hold closures (their plans) that cannot be
    # pickled, and the children need nothing else from the parent.
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(prepared, share, results_root, speed, queue),
                           name=f"labctl-channels-{k}", daemon=False)
               for k, share in enumerate(shares)]
    for w in workers:
        w.start()
    outcomes: list[RunOutcome | Exception | None] = [None] * len(prepared)
    pending = len(prepared)
    forwarded = False
    try:
        while pending:
            if not forwarded and any(c.abort_reason for c in controls):
                # SIGTERM to the parent alone (a service manager): pass it on to the workers.
                forwarded = True
                for w in workers:
                    if w.is_alive() and w.pid is not None:
                        os.kill(w.pid, signal.SIGTERM)
            try:
                k, outcome, error = queue.get(timeout=0.2)
            except Empty:
                if not any(w.is_alive() for w in workers):
                    break
                continue
            outcomes[k] = outcome if error is None else LabctlError(error)
            pending -= 1
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C and are stopping their runs safely; wait for them.
        pass
    for w in workers:
        w.join()
    return [o if o is not None else LabctlError("channel did not finish (its worker process "
                                                 "ended early)") for o in outcomes]
