"""The console's web application (Starlette): pages, live events, and the few POSTs.

Pages are rendered on the server (Jinja2); a little plain JavaScript
(static/console.js) fills tiles and plots from server-sent events and JSON.
Run control goes through `labctl.engine.control.send_command`, runs start
through `labctl run` in their own process: the console has no other path to
an instrument.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from labctl.console import data, launch
from labctl.console.checking import check_in_child
from labctl.console.plans import PlanJobs
from labctl.console.planview import readable, rough_line
from labctl.console.runs_index import filter_runs, qualification_sessions
from labctl.console.security import (
    FORM_FIELD,
    HEADER,
    Guard,
    GuardMiddleware,
    NotFound,
    inside,
    run_folder,
    same,
)
from labctl.console.watch import RunWatcher

HERE = Path(__file__).resolve().parent
CHECKS_AT_ONCE = 2  # Check child processes at a time (a 2-core lab PC also runs benches)
EVENT_INTERVAL_S = 0.5  # status.json changes at most once a second: shown within 0.5 s


@dataclass
class ConsoleConfig:
    results: Path
    procedures: Path | None
    stations: Path | None
    cells: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    access_token: str | None = None  # set when --allow-remote
    form_token: str = ""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    max_points: int = data.DEFAULT_MAX_POINTS
    estimator: Any = None  # remaining time of a running run (labctl.console.estimate)
    extra: dict[str, Any] = field(default_factory=dict)


def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _fmt_time(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def create_app(config: ConsoleConfig) -> Starlette:
    """The console application for `config` (used by `labctl console` and the tests)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["hms"] = _fmt_time
    templates.env.globals["form_token"] = config.form_token
    watcher = RunWatcher(config.results, estimator=config.estimator)
    log_dir = Path(tempfile.gettempdir()) / f"labctl-console-{os.getuid()}"
    plot_cache = PlotCache()
    plans = PlanJobs()

    def stopping() -> bool:
        """True once the server shuts down: event streams end instead of holding it up."""
        check = config.extra.get("stopping")
        return bool(check and check())

    def page(request: Request, name: str, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"config": config, **context})

    def not_found(what: str = "") -> Response:
        return PlainTextResponse(f"not found{': ' + what if what else ''}", status_code=404)

    async def form_of(request: Request) -> dict[str, Any] | Response:
        """The POST body (JSON or form), after checking the form token."""
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"ok": False, "error": "body is not JSON"}, status_code=400)
            body = body if isinstance(body, dict) else {}
        elif request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            from urllib.parse import parse_qsl

            body = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        else:
            body = {}
        token = request.headers.get(HEADER) or body.get(FORM_FIELD)
        if not same(token if isinstance(token, str) else None, config.form_token):
            return JSONResponse({"ok": False, "error": "forbidden: missing or wrong form token"},
                                status_code=403)
        return body

    # -- Benches ---------------------------------------------------------------------------
    async def benches(request: Request) -> Response:
        tiles = await run_in_threadpool(watcher.tiles)
        return page(request, "benches.html", tiles=tiles, nav="benches")

    async def bench_events(request: Request) -> Response:
        async def stream():
            while True:
                tiles = await run_in_threadpool(watcher.tiles, 0.25)
                yield f"data: {json.dumps(tiles)}\n\n"
                if stopping() or await request.is_disconnected():
                    break
                await asyncio.sleep(EVENT_INTERVAL_S)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def control(request: Request) -> Response:
        body = await form_of(request)
        if isinstance(body, Response):
            return body
        command = request.path_params["command"]
        if command not in ("pause", "continue", "stop"):
            return not_found(command)
        try:
            path = run_folder(config.results, request.path_params["run_id"])
        except NotFound:
            return not_found("run")
        from labctl.engine.control import send_command
        from labctl.store.rundir import RunDir, effective_status

        state = effective_status(RunDir.open(path).meta)
        if state != "running":
            return JSONResponse({"ok": False, "error": f"run {path.name} is {state}, not running"},
                                status_code=409)
        send_command(path, command, reason=f"{command} requested from the console")
        return JSONResponse({"ok": True, "run_id": path.name, "command": command})

    # -- Start -----------------------------------------------------------------------------
    async def start_page(request: Request) -> Response:
        # Listing the folders parses every station file: on a worker thread, so the
        # benches' event streams are not held up meanwhile.
        ctx = await run_in_threadpool(lambda: {
            "procedures": launch.list_files(config.procedures, launch.PROCEDURE_SUFFIXES),
            "stations": launch.station_files(config.stations),
            "cells": launch.cell_choices(config.cells)})
        return page(request, "start.html", **ctx, nav="start")

    async def parameters(request: Request) -> Response:
        name = request.query_params.get("procedure", "")
        try:
            path = inside(config.procedures, name) if config.procedures else None
        except NotFound:
            path = None
        if path is None or not path.is_file():
            return not_found("procedure")
        fields, problems = await run_in_threadpool(launch.parameter_fields, path)
        return JSONResponse({"procedure": name, "fields": [f.as_dict() for f in fields],
                             "problems": problems})

    def choice_of(body: dict[str, Any]) -> launch.Choice | str:
        try:
            proc = inside(config.procedures, str(body.get("procedure", ""))) \
                if config.procedures else None
            station = inside(config.stations, str(body.get("station", ""))) \
                if config.stations else None
        except NotFound:
            return "procedure or station not found in the console's folders"
        if proc is None or station is None or not proc.is_file() or not station.is_file():
            return "choose a procedure and a station from the lists"
        cell = str(body.get("cell", ""))
        if cell.startswith("file:"):
            try:
                cell = str(inside(config.cells, cell[5:])) if config.cells else ""
            except NotFound:
                cell = ""
            if not cell or not Path(cell).is_file():
                return "cell file not found in the console's cells folder"
        elif cell not in launch.cell_choices(None):
            return f"unknown cell preset {cell!r}"
        raw = body.get("params") or {}
        params = {str(k): str(v) for k, v in raw.items() if str(v).strip() != ""} \
            if isinstance(raw, dict) else {}
        for name, value in params.items():
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in name + value):
                return f"parameter {name!r}: control characters are not allowed"
        speed = body.get("speed")
        try:
            speed_v = float(speed) if speed not in (None, "") else None
        except (TypeError, ValueError):
            return f"speed {speed!r}: give a number of virtual seconds per wall second"
        if speed_v is not None and not (math.isfinite(speed_v) and speed_v > 0):
            return "speed must be a positive number"
        return launch.Choice(proc, station, cell, params, speed_v)

    def verdict_of(choice: launch.Choice) -> dict[str, Any]:
        """The Check (labctl validate) in a child process: this thread only waits."""
        return check_in_child(choice.procedure, choice.station, choice.cell, choice.params,
                              cancelled=lambda: bool(stopping()) or plans.closed)

    # At most CHECKS_AT_ONCE checks run; more wait for their turn without holding one of
    # the threads every other request needs (anyio's shared pool).
    check_slots = anyio.CapacityLimiter(CHECKS_AT_ONCE)

    async def verdict_in_turn(choice: launch.Choice) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(verdict_of, choice, limiter=check_slots)

    async def check(request: Request) -> Response:
        body = await form_of(request)
        if isinstance(body, Response):
            return body
        choice = choice_of(body)
        if isinstance(choice, str):
            return JSONResponse({"ok": False, "problems": [
                {"file": None, "line": None, "column": None, "field": "", "message": choice}]})
        verdict = await verdict_in_turn(choice)
        # The plan shown is `labctl plan`'s, made in the background; also for a choice
        # refused past a ceiling, where it shows why.
        plan_id = plans.request(choice.procedure, choice.station, choice.cell,
                                choice.params) if verdict.get("plannable") else None
        problems = [_for_browser(p, plan_id is not None) for p in verdict["problems"]]
        est = verdict.get("estimate")
        return JSONResponse({"ok": not problems, "problems": problems, "plan_id": plan_id,
                             "estimate": {**est, "line": rough_line(est)} if est else None,
                             "command": "labctl " + " ".join(launch.run_command(
                                 choice, config.results)[3:])})

    async def plan(request: Request) -> Response:
        state = plans.poll(request.path_params["plan_id"])
        if state is None:
            return JSONResponse({"state": "gone", "error": "no such plan (Check again)"},
                                status_code=404)
        return JSONResponse(state, headers={"Cache-Control": "no-store"})

    async def start(request: Request) -> Response:
        body = await form_of(request)
        if isinstance(body, Response):
            return body
        choice = choice_of(body)
        if isinstance(choice, str):
            return JSONResponse({"ok": False, "error": choice}, status_code=400)
        verdict = await verdict_in_turn(choice)  # never skipped
        if verdict["problems"]:
            return JSONResponse({"ok": False, "problems": [
                _for_browser(p, False) for p in verdict["problems"]],
                "error": "the check does not pass"}, status_code=400)
        result = await run_in_threadpool(launch.start, choice, config.results, log_dir)
        return JSONResponse(result, status_code=200 if result["ok"] else 500)

    # -- Runs ------------------------------------------------------------------------------
    async def runs_page(request: Request) -> Response:
        q = dict(request.query_params)
        rows, facets = await run_in_threadpool(filter_runs, config.results, q)
        return page(request, "runs.html", runs=rows, facets=facets, q=q, nav="runs")

    async def run_page(request: Request) -> Response:
        try:
            path = run_folder(config.results, request.path_params["run_id"])
        except NotFound:
            return not_found("run")
        ctx = await run_in_threadpool(_run_context, path, config)
        return page(request, "run.html", nav="runs", **ctx)

    async def run_plots(request: Request) -> Response:
        try:
            path = run_folder(config.results, request.path_params["run_id"])
        except NotFound:
            return not_found("run")
        payload = await run_in_threadpool(plot_cache.get, path, config.max_points)
        return JSONResponse(payload)

    async def run_events(request: Request) -> Response:
        try:
            path = run_folder(config.results, request.path_params["run_id"])
        except NotFound:
            return not_found("run")

        async def stream():
            last = None
            while True:
                tile = next((t for t in await run_in_threadpool(watcher.tiles)
                             if t["run_id"] == path.name), None)
                if tile is not None and tile != last:
                    yield f"data: {json.dumps(tile)}\n\n"
                    last = tile
                if tile is None or not tile["active"] or stopping() or \
                        await request.is_disconnected():
                    yield "event: ended\ndata: {}\n\n"
                    break
                await asyncio.sleep(EVENT_INTERVAL_S)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def download(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        try:
            path = run_folder(config.results, request.path_params["run_id"])
        except NotFound:
            return not_found("run")
        from labctl.plugins import build_registry

        registry = build_registry()
        if fmt not in registry.names("exporter"):
            return not_found(f"format {fmt}")
        return await run_in_threadpool(_export, path, fmt, registry)

    async def analysis_file(request: Request) -> Response:
        try:
            path = run_folder(config.results, request.path_params["run_id"])
            target = inside(path / "analysis", request.path_params["file"])
        except NotFound:
            return not_found()
        if not target.is_file():
            return not_found()
        return FileResponse(target)

    async def qualification(request: Request) -> Response:
        sessions = await run_in_threadpool(qualification_sessions, config.results)
        return page(request, "qualification.html", sessions=sessions, nav="qualification")

    async def qualification_file(request: Request) -> Response:
        try:
            target = inside(config.results / "qualification", request.path_params["file"])
        except NotFound:
            return not_found()
        if not target.is_file():
            return not_found()
        return FileResponse(target)

    async def plotly_js(request: Request) -> Response:
        js = _plotly_js()
        if js is None:
            return PlainTextResponse("// plotly is not installed: pip install 'labctl[console]'",
                                     media_type="text/javascript")
        return FileResponse(js, media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    routes = [
        Route("/", benches),
        Route("/events/benches", bench_events),
        Route("/runs/{run_id}/control/{command}", control, methods=["POST"]),
        Route("/start", start_page),
        Route("/api/parameters", parameters),
        Route("/api/check", check, methods=["POST"]),
        Route("/api/start", start, methods=["POST"]),
        Route("/api/plan/{plan_id}", plan),
        Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/plots", run_plots),
        Route("/runs/{run_id}/events", run_events),
        Route("/runs/{run_id}/download/{fmt}", download),
        Route("/runs/{run_id}/analysis/{file:path}", analysis_file),
        Route("/qualification", qualification),
        Route("/qualification/{file:path}", qualification_file),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    guard = Guard(config.form_token, config.access_token, config.allowed_hosts)
    app = Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=guard)])
    app.state.plans = plans  # `labctl console` stops the plans under way when it stops
    return app


def _for_browser(problem: dict[str, Any], with_plan: bool) -> dict[str, Any]:
    """A check problem as the browser shows it: numbers without e-notation, and the
    plan's warnings said to be where they are (the command line's words name a command)."""
    from labctl.plan.report import WARNINGS_WHERE

    where = " (listed with the plan)" if with_plan else ""
    message = readable(str(problem.get("message", ""))).replace(" " + WARNINGS_WHERE, where)
    return {**problem, "message": message}


def _run_context(path: Path, config: ConsoleConfig) -> dict[str, Any]:
    from labctl.store.run import open_run
    from labctl.store.rundir import effective_status

    run = open_run(path)
    meta = run.meta
    status = effective_status(meta)
    steps = run.steps
    cycles = run.cycles
    return {
        "run_id": path.name, "meta": meta, "status": status,
        "meta_json": json.dumps({k: v for k, v in meta.items() if k != "summary"}, indent=2,
                                default=str),
        "summary": meta.get("summary") or {},
        "steps_html": data.frame_html(steps.drop(columns=["path"], errors="ignore")),
        "cycles_html": data.frame_html(cycles) if len(cycles) else "",
        "n_cycles": len(cycles),
        "analyses": data.analyses(path),
        "qualification": qualification_sessions(config.results, station_file=(
            meta.get("station") or {}).get("file")),
        "formats": _formats(),
        "imported": meta.get("status") == "imported",
    }


def _formats() -> list[str]:
    from labctl.plugins import build_registry

    return build_registry().names("exporter")


class PlotCache:
    """The plot data of the last few runs viewed, until their journal or run.json changes
    (a finished run's figures are computed once; a running run's on every page load)."""

    def __init__(self, size: int = 16):
        self.size = size
        self._items: dict[Path, tuple[tuple, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: Path) -> tuple:
        stamps = []
        for name in ("run.json", "journal.bin"):
            try:
                st = (path / name).stat()
                stamps.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def get(self, path: Path, max_points: int) -> dict[str, Any]:
        key = (self._key(path), max_points)
        with self._lock:
            hit = self._items.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        payload = _plots(path, max_points)
        with self._lock:
            self._items.pop(path, None)
            self._items[path] = (key, payload)
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))
        return payload


def warm_up() -> None:
    """Import what the run pages need, so the first page a technician opens is not slow."""
    import labctl.analysis.cycling.dqdv  # noqa: F401  (scipy)
    import labctl.store.run  # noqa: F401  (pandas, pyarrow)


def _plots(path: Path, max_points: int) -> dict[str, Any]:
    from labctl.store.run import open_run

    started = time.perf_counter()
    cols = data.read_columns(path, data.PLOT_COLUMNS)  # one read for every figure
    out = data.traces(cols, max_points)
    run = open_run(path)
    out["errors"] = []
    # One figure that cannot be drawn (an odd imported table) must not hide the others.
    for key, make in (("per_cycle", lambda: data.per_cycle(run.cycles)),
                      ("dqdv", lambda: data.dqdv(cols, max_points)),
                      ("spectra", lambda: data.spectra(run))):
        try:
            out[key] = make()
        except Exception as exc:
            out[key] = {} if key == "per_cycle" else []
            out["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
    out["elapsed_s"] = time.perf_counter() - started
    return out


def _export(path: Path, fmt: str, registry: Any) -> Response:
    """Export into a temporary folder and send it (a folder export as a zip); removed after."""
    import shutil

    from labctl.store.run import open_run

    tmp = Path(tempfile.mkdtemp(prefix="labctl-export-"))
    ext = {"csv": ".csv", "bdf": ".bdf.csv"}.get(fmt, f".{fmt}")
    target = tmp / f"{path.name}{ext}"
    written = Path(registry.get("exporter", fmt).export(open_run(path), target))
    if written.is_dir():
        archive = shutil.make_archive(str(tmp / f"{path.name}-{fmt}"), "zip", root_dir=written)
        written = Path(archive)
    return FileResponse(written, filename=written.name,
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
