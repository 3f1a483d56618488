"""labctl's pytest plugin (entry point `pytest11`): hardware qualification with pytest.

Loaded by every pytest run; it does nothing unless `--labctl-station FILE` or
`--labctl-sim` is given (then it opens the station, provides the instrument
fixtures and writes qualification records). Tests marked
`labctl_qualification` are deselected (counted in pytest's summary) when neither option is
given; run on their own without a station, they are skipped with that reason.

    pytest tests/qualification --labctl-sim
    pytest tests/qualification --labctl-station instruments/bench-a.yaml

Fixtures: `station`, `cycler`, `chamber`, `pstat`, `press`, `bms`,
`reference_meter`, `run_procedure(path, **params)`, `measure(name, value, low=,
high=, unit=)`. The record of each device under test (the roles a test used)
goes to RESULTS/qualification/<session>/ as JSON, to the JUnit XML as
properties, and to report.html. docs/qualification.md has the long form.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROLE_FIXTURES = ("cycler", "chamber", "pstat", "press", "bms")
SIM_STATION = "instruments/example-qualification-sim.yaml"
MARKER = "labctl_qualification"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("labctl", "labctl hardware qualification")
    group.addoption("--labctl-station", default=None, metavar="FILE",
                    help="station file of the instruments to qualify")
    group.addoption("--labctl-sim", action="store_true", default=False,
                    help=f"qualify the simulated bench ({SIM_STATION} unless --labctl-station)")
    group.addoption("--labctl-cell", default=None, metavar="CELL",
                    help="cell file or preset on the cycler (default: the LFP preset)")
    group.addoption("--labctl-results", default="results", metavar="DIR",
                    help="results store for runs and qualification records (default: results)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a hardware qualification test (needs "
                                       "--labctl-station FILE or --labctl-sim)")
    station = config.getoption("--labctl-station", None)
    sim = config.getoption("--labctl-sim", False)
    if station or sim:
        config.stash[_SESSION_KEY] = QualificationSession(config, station, sim)


def pytest_collection_modifyitems(config: Any, items: list) -> None:
    # Without a station the hardware suites are not part of the run at all (deselected,
    # and said so in the summary line), rather than reported as skipped tests.
    if _SESSION_KEY in config.stash:
        return
    hardware = [item for item in items if item.get_closest_marker(MARKER)]
    if hardware and len(hardware) < len(items):
        config.hook.pytest_deselected(items=hardware)
        items[:] = [item for item in items if not item.get_closest_marker(MARKER)]
        return
    # Only the suites were asked for, without a station: say why nothing runs.
    skip = pytest.mark.skip(reason="hardware qualification suite: give --labctl-station FILE "
                                   "or --labctl-sim to run it")
    for item in hardware:
        item.add_marker(skip)


_SESSION_KEY = pytest.StashKey["QualificationSession"]()


# -- records ----------------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    value: float
    low: float | None
    high: float | None
    unit: str
    verdict: str  # "pass" / "fail"

    def limits_text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "+inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}] {self.unit}".rstrip()

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "low": self.low, "high": self.high,
                "unit": self.unit, "verdict": self.verdict}


@dataclass
class QualTestRecord:
    nodeid: str
    devices: list[str]
    measurements: list[Measurement] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    outcome: str = "unknown"
    duration_s: float = 0.0
    message: str = ""

    def as_dict(self) -> dict:
        return {"nodeid": self.nodeid, "outcome": self.outcome, "duration_s": self.duration_s,
                "message": self.message, "measurements": [m.as_dict() for m in self.measurements],
                "runs": self.runs}


class QualificationSession:
    """Station, records and outputs of one pytest session."""

    def __init__(self, config: Any, station_file: str | None, sim: bool):
        self.config = config
        self.sim = sim
        self.station_file = station_file
        self.cell_ref = config.getoption("--labctl-cell", None)
        self.results = Path(config.getoption("--labctl-results", "results"))
        self.started = time.time()
        self.session_id = (time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.started))
                           + f"-{os.getpid()}")
        self.tests: dict[str, QualTestRecord] = {}
        self.station: Any = None
        self.identities: dict[str, dict] = {}
        self.open_error: str | None = None

    # the station, opened once on first use
    def station_path(self) -> Path:
        from labctl.errors import LabctlError

        if self.station_file:
            return Path(self.station_file)
        # The working folder or the labctl checkout, never a parent folder (issue 13).
        for folder in (Path.cwd().resolve(), Path(__file__).resolve().parent.parent):
            candidate = folder / SIM_STATION
            if candidate.is_file():
                return candidate
        raise LabctlError(f"--labctl-sim: no {SIM_STATION} in the working folder or the labctl "
                          "checkout; give --labctl-station FILE")

    def open(self) -> Any:
        if self.station is None:
            from labctl.cells import DEFAULT_CELL, load_cell
            from labctl.stations.build import open_station
            from labctl.stations.load import load_station

            spec = load_station(self.station_path())
            self.cell = load_cell(self.cell_ref or DEFAULT_CELL)
            self.station = open_station(spec, self.cell)
            self.identities = self.station.identities()
        return self.station

    def close(self) -> None:
        if self.station is not None:
            self.station.safe_state()
            self.station.close()

    def record_for(self, item: Any) -> QualTestRecord:
        rec = self.tests.get(item.nodeid)
        if rec is None:
            names = getattr(item, "fixturenames", ())
            devices = [r for r in ROLE_FIXTURES if r in names]
            rec = self.tests[item.nodeid] = QualTestRecord(item.nodeid, devices)
        return rec

    # outputs
    def write(self) -> Path | None:
        if not self.tests:
            return None
        from labctl.store.atomic import atomic_write_json

        folder = self.results / "qualification" / self.session_id
        folder.mkdir(parents=True, exist_ok=True)
        records = self.device_records()
        for role, record in records.items():
            serial = str(record["identity"].get("serial") or "unknown").replace("/", "_")
            atomic_write_json(folder / f"{role}-{serial}.json", record)
        summary = {"schema": 1, "session": self.session_info(), "devices": records}
        atomic_write_json(folder / "session.json", summary)
        (folder / "report.html").write_text(render_html(summary), encoding="utf-8")
        return folder

    def session_info(self) -> dict:
        import socket

        return {"id": self.session_id, "started_unix_s": self.started, "ended_unix_s": time.time(),
                "mode": "simulation" if self.sim else "hardware",
                "station_file": str(self.station_path().resolve()) if (self.station_file or self.sim)
                else None, "host": socket.gethostname(), "open_error": self.open_error}

    def device_records(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        roles = sorted({d for t in self.tests.values() for d in t.devices} or {"station"})
        for role in roles:
            tests = [t for t in self.tests.values() if role in t.devices or
                     (role == "station" and not t.devices)]
            ident = dict(self.identities.get(role, {}))
            failed = any(t.outcome not in ("passed", "skipped") for t in tests)
            out[role] = {
                "schema": 1,
                "session": self.session_id,
                "role": role,
                "identity": {k: ident.get(k) for k in ("idn", "make", "model", "serial", "firmware")},
                "driver": ident.get("driver"),
                "calibration_due": ident.get("calibration_due"),
                "verdict": "fail" if failed else "pass",
                "tests": [t.as_dict() for t in tests],
                "runs": sorted({r for t in tests for r in t.runs}),
            }
        return out


def _session(request: Any) -> QualificationSession:
    qs = request.config.stash.get(_SESSION_KEY, None)
    if qs is None:
        pytest.skip("hardware qualification: give --labctl-station FILE or --labctl-sim")
    return qs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any):
    outcome = yield
    qs = item.config.stash.get(_SESSION_KEY, None)
    if qs is None:
        return
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        rec = qs.record_for(item)
        rec.outcome = report.outcome
        rec.duration_s = round(report.duration, 6)
        if report.failed:
            rec.message = str(getattr(report.longrepr, "reprcrash", None) and
                              report.longrepr.reprcrash.message or report.longreprtext)[:2000]
        elif report.skipped and isinstance(report.longrepr, tuple):
            rec.message = str(report.longrepr[2])
        # JUnit XML takes the properties of the teardown report, which copies the item's.
        for m in rec.measurements:  # one property per measurement
            item.user_properties.append((f"labctl.{m.name}", f"{m.value:g} {m.unit} "
                                           f"{m.limits_text()} {m.verdict}"))
        for role in rec.devices:
            ident = qs.identities.get(role, {})
            for key in ("model", "serial", "firmware", "calibration_due"):
                if ident.get(key):
                    item.user_properties.append((f"labctl.{role}.{key}", str(ident[key])))


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    qs = session.config.stash.get(_SESSION_KEY, None)
    if qs is None:
        return
    qs.close()
    folder = qs.write()
    if folder is not None:
        qs.folder = folder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    qs = terminalreporter.config.stash.get(_SESSION_KEY, None)
    folder = getattr(qs, "folder", None) if qs is not None else None
    if folder is None:
        return
    terminalreporter.section("labctl qualification")
    for role, rec in qs.device_records().items():
        ident = rec["identity"]
        terminalreporter.write_line(
            f"{role}: {ident.get('model')} serial {ident.get('serial')} "
            f"(calibration due {rec['calibration_due']}): {rec['verdict'].upper()}")
        for t in rec["tests"]:
            for m in t["measurements"]:
                if m["verdict"] == "fail":
                    terminalreporter.write_line(
                        f"  FAIL {m['name']} = {m['value']:g} {m['unit']} outside "
                        f"{Measurement(**m).limits_text()}")
    terminalreporter.write_line(f"records: {folder}")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def labctl_session(request: Any) -> QualificationSession:
    """The qualification session: `.sim` (simulated bench?), `.station_path()`, `.cell`."""
    return _session(request)


@pytest.fixture(scope="session")
def station(request: Any) -> Any:
    """The station under qualification (opened once per session, made safe at the end)."""
    qs = _session(request)
    from labctl.errors import LabctlError

    try:
        return qs.open()
    except LabctlError as exc:
        qs.open_error = str(exc)
        pytest.fail(f"cannot open the station: {exc}", pytrace=False)


def _role(request: Any, role: str) -> Any:
    st = request.getfixturevalue("station")
    inst = st.get(role)
    if inst is None:
        pytest.skip(f"the station has no {role!r} instrument")
    return inst


@pytest.fixture
def cycler(request: Any) -> Any:
    yield _role(request, "cycler")
    _role(request, "cycler").safe_state()


@pytest.fixture
def chamber(request: Any) -> Any:
    yield _role(request, "chamber")


@pytest.fixture
def pstat(request: Any) -> Any:
    yield _role(request, "pstat")
    _role(request, "pstat").safe_state()


@pytest.fixture
def press(request: Any) -> Any:
    return _role(request, "press")


@pytest.fixture
def bms(request: Any) -> Any:
    return _role(request, "bms")


@pytest.fixture
def reference_meter(cycler: Any) -> Any:
    """A reference meter on the cycler's terminals (simulated stations provide one)."""
    get = getattr(cycler, "reference_meter", None)
    if get is None:
        pytest.skip("no reference meter on this station's cycler (the simulated SMU has one; "
                    "for hardware connect one and provide it through a conftest fixture)")
    return get()


@pytest.fixture
def measure(request: Any):
    """`measure(name, value, low=None, high=None, unit="")`: record; out of limits fails."""
    qs = _session(request)
    rec = qs.record_for(request.node)

    def _measure(name: str, value: float, low: float | None = None, high: float | None = None,
                 unit: str = "") -> float:
        value = float(value)
        ok = math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
        m = Measurement(str(name), value, low, high, unit, "pass" if ok else "fail")
        rec.measurements.append(m)
        if not ok:
            pytest.fail(f"measurement {m.name} = {value:g} {unit} is outside its limits "
                        f"{m.limits_text()}", pytrace=False)
        return value

    return _measure


@pytest.fixture
def run_procedure(request: Any):
    """`run_procedure(path, **params)`: run a procedure file on the station; returns the Run."""
    qs = _session(request)
    rec = qs.record_for(request.node)

    def _run(path: str | Path, **params: Any) -> Any:
        from labctl.engine.session import prepare, start_run
        from labctl.store.run import open_run

        st = request.getfixturevalue("station")
        st.safe_state()
        prep = prepare(path, station_path=qs.station_path(), cell_ref=qs.cell_ref,
                       params={k: str(v) for k, v in params.items()})
        outcome = start_run(prep, results_root=qs.results)
        rec.runs.append(str(Path(outcome.path).resolve()))
        for role in _required_roles(Path(path)):  # the run's devices are under test too
            if role in ROLE_FIXTURES and role not in rec.devices:
                rec.devices.append(role)
        return open_run(outcome.path)

    return _run


def _required_roles(path: Path) -> list[str]:
    """The `requires:` roles of a YAML procedure (a Python procedure: the cycler)."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return ["cycler"]
    from labctl.yamlio import load_file

    data = load_file(path).data
    roles = data.get("requires") if isinstance(data, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else ["cycler"]


# -- the HTML report ----------------------------------------------------------------------------


def render_html(summary: dict) -> str:
    from html import escape

    s = summary["session"]
    rows = []
    for role, rec in summary["devices"].items():
        ident = rec["identity"]
        rows.append(f"<h2>{escape(role)}: {escape(str(ident.get('model')))} "
                    f"<span class='{rec['verdict']}'>{rec['verdict'].upper()}</span></h2>")
        rows.append("<table><tr><th>IDN</th><td>" + escape(str(ident.get("idn"))) +
                    "</td></tr><tr><th>serial</th><td>" + escape(str(ident.get("serial"))) +
                    "</td></tr><tr><th>firmware</th><td>" + escape(str(ident.get("firmware"))) +
                    "</td></tr><tr><th>calibration due</th><td>" +
                    escape(str(rec.get("calibration_due"))) + "</td></tr></table>")
        rows.append("<table><tr><th>test</th><th>outcome</th><th>measurement</th><th>value</th>"
                    "<th>limits</th><th>verdict</th></tr>")
        for t in rec["tests"]:
            ms = t["measurements"] or [None]
            for k, m in enumerate(ms):
                test_cells = (f"<td rowspan='{len(ms)}'>{escape(t['nodeid'])}</td>"
                              f"<td rowspan='{len(ms)}' class='{t['outcome']}'>{t['outcome']}</td>"
                              if k == 0 else "")
                if m is None:
                    rows.append(f"<tr>{test_cells}<td colspan='4'>{escape(t['message'])}</td></tr>")
                    continue
                meas = Measurement(**m)
                rows.append(f"<tr>{test_cells}<td>{escape(m['name'])}</td>"
                            f"<td>{m['value']:.6g} {escape(m['unit'])}</td>"
                            f"<td>{escape(meas.limits_text())}</td>"
                            f"<td class='{'passed' if m['verdict'] == 'pass' else 'failed'}'>"
                            f"{m['verdict']}</td></tr>")
        rows.append("</table>")
        if rec["runs"]:
            rows.append("<p>runs: " + ", ".join(escape(r) for r in rec["runs"]) + "</p>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>labctl qualification "
            f"{escape(s['id'])}</title><style>body{{font-family:sans-serif}}"
            "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #999;"
            "padding:2px 6px;text-align:left}.passed,.pass{color:#070}.failed,.fail{color:#b00}"
            ".skipped{color:#777}</style></head><body>"
            f"<h1>labctl qualification {escape(s['id'])}</h1><p>{escape(s['mode'])}, station "
            f"{escape(str(s['station_file']))}, host {escape(s['host'])}</p>"
            + "".join(rows) + "</body></html>\n")
