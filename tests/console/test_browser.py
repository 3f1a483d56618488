"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

One scenario, as a technician does it: the console runs as `labctl console` on a
free loopback port with a temporary results store. A run started from a terminal
appears on the Benches page; quickstart is started through the form with its
rate changed; its voltage moves live; pause shows "paused" and 0 A, continue
resumes; the other run is stopped and shows aborted; a procedure with an error
shows validate's located message with Start disabled; a finished run's page
draws its plots, lists its cycles and downloads as BDF. Screenshots of every page
go to $LABCTL_SCREENSHOTS (default: the test's temporary folder).

The console runs in Berlin's time zone and the browser in New York's: the plan's
expected end must be the same instant, shown in the browser's zone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip("headless browser tests need Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("starlette", reason="the console extra is not installed: pip install -e '.[console]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONSOLE_TZ, BROWSER_TZ = "Europe/Berlin", "America/New_York"
SPEED = "30"  # virtual seconds per wall second: quickstart's 2C discharge lasts ~15 s of wall time
CAPACITY_AH = 2.2  # lfp-2p2ah, the default cell
BAD_PROCEDURE = """name: too-high
description: charges beyond the cell's maximum voltage
steps:
  - Rest for 1 minute
  - Charge at 1C until 4.5 V
"""


def _quickstart_with_rate() -> str:
    """procedures/quickstart.yaml as shipped: its discharge rate is a declared parameter,
    which the scenario changes through the form."""
    text = (REPO / "procedures" / "quickstart.yaml").read_text(encoding="utf-8")
    assert "discharge_c:" in text and "{discharge_c}C" in text
    return text


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labctl.cli", *args], cwd=REPO,
                            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    results, procs, shots = root / "results", root / "procedures", Path(
        os.environ.get("LABCTL_SCREENSHOTS") or root / "screenshots")
    procs.mkdir()
    shots.mkdir(parents=True, exist_ok=True)
    (procs / "quickstart.yaml").write_text(_quickstart_with_rate(), encoding="utf-8")
    (procs / "too-high.yaml").write_text(BAD_PROCEDURE, encoding="utf-8")
    shutil.copy(REPO / "procedures" / "cycle-life.yaml", procs)  # 12 parameters, a warning
    # The station's hardware qualification (pytest plugin, simulated bench), meanwhile.
    qual = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/qualification", "--labctl-sim", "--labctl-results",
                             str(results)], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    # A finished run, recorded from the command line (virtual time, under a second).
    done = subprocess.run([sys.executable, "-m", "labctl.cli", "run", "procedures/quickstart.yaml",
                           "--results", str(results), "--no-progress", "--json"], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    finished = Path(json.loads(done.stdout)["run_dir"])
    # A finished impedance run with its stored EIS analysis (tables, figures, summary).
    eis = subprocess.run([sys.executable, "-m", "labctl.cli", "run", "procedures/eis.yaml",
                          "--results", str(results), "--no-progress", "--json"], cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert eis.returncode == 0, eis.stdout + eis.stderr
    eis_run = Path(json.loads(eis.stdout)["run_dir"])
    fit = subprocess.run([sys.executable, "-m", "labctl.cli", "analyze", "eis", str(eis_run)],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert fit.returncode == 0, fit.stdout + fit.stderr
    qual_out = qual.communicate(timeout=180)[0]
    assert qual.returncode == 0, qual_out
    # Another run started from a terminal, paced so that it is still running.
    other = _cli("run", "procedures/quickstart.yaml", "--results", str(results), "--speed", SPEED,
                 "--no-progress", start_new_session=True)
    console = _cli("console", "--results", str(results), "--procedures", str(procs),
                   "--stations", str(REPO / "instruments"), "--port", "0",
                   env={**_env(), "TZ": CONSOLE_TZ})
    started = []
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = console.stdout.readline()
            if "http://" in line or console.poll() is not None:
                break
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"console did not print its address: {line!r}"
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
            opts.add_argument(flag)
        downloads = root / "downloads"
        downloads.mkdir()
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                               "download.prompt_for_download": False})
        driver = webdriver.Chrome(options=opts,
                                  service=webdriver.ChromeService(
                                      executable_path=CHROMEDRIVER,
                                      env={**os.environ, "TZ": BROWSER_TZ}))
        driver.set_page_load_timeout(30)
        try:
            yield {"url": match.group(0).rstrip("/"), "driver": driver, "results": results,
                   "finished": finished, "eis": eis_run, "other": other, "shots": shots, "procs": procs,
                   "downloads": downloads, "started": started, "console": console}
        finally:
            driver.quit()
    finally:
        for proc in (console, other):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        from labctl.store.rundir import effective_status

        for run_id, pid in started:  # runs the console started (their own sessions), if alive
            if effective_status(_meta(results, run_id)) == "running":
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for proc in (console, other):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc.stdout.close()


def _wait(driver, cond, timeout=20.0, what=""):
    # tiles are patched twice a second: an element found a moment ago may have been replaced
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(lambda d: cond(d), message=what)


def _click(driver, run_id, command):
    """Click a tile's button (found again if the tile was patched meanwhile)."""
    def attempt(d):
        _tile(d, run_id).find_element(By.CSS_SELECTOR, f'button[data-cmd="{command}"]').click()
        return True
    _wait(driver, attempt, 10, f"{command} button of {run_id}")


def _tile(driver, run_id):
    return driver.find_element(By.CSS_SELECTOR, f'article.tile[data-run="{run_id}"]')


def _tile_text(driver, run_id, css):
    try:
        return _tile(driver, run_id).find_element(By.CSS_SELECTOR, css).text
    except Exception:
        return ""


def _confirm(driver, expect_in_text):
    dialog = _wait(driver, lambda d: d.find_element(By.ID, "confirm") if
                   d.find_element(By.ID, "confirm").get_attribute("open") is not None else None,
                   5, "confirmation dialog")
    text = driver.find_element(By.ID, "confirm-text").text
    assert expect_in_text in text, text
    dialog.find_element(By.ID, "confirm-ok").click()


# The page's fetch, wrapped so that a test can hold the replies to a URL prefix until it
# releases them: the states in between (a Check still running, a plan still planning) are
# then seen for certain, not by luck of timing.
HOLD_JS = """
window.__hold = {}; window.__held = {};
const realFetch = window.fetch;
window.fetch = async (url, opts) => {
  const reply = await realFetch(url, opts);
  for (const prefix of Object.keys(window.__hold)) {
    if (!String(url).startsWith(prefix) || !window.__hold[prefix]) continue;
    window.__held[prefix] = (window.__held[prefix] || 0) + 1;
    while (window.__hold[prefix]) await new Promise(r => setTimeout(r, 50));
  }
  return reply;
};
"""


def _hold(driver, prefix: str, on: bool = True) -> None:
    driver.execute_script("window.__hold[arguments[0]] = arguments[1];", prefix, on)


def _held(driver, prefix: str) -> int:
    return driver.execute_script("return window.__held[arguments[0]] || 0;", prefix)


def _in_view(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;", element_id)


def _meta(results: Path, run_id: str) -> dict:
    return json.loads((results / run_id / "run.json").read_text())


def test_console_scenario_in_chromium(bench):
    try:
        _scenario(bench)
    except BaseException:
        bench["driver"].save_screenshot(str(bench["shots"] / "FAILED.png"))
        raise


def _scenario(bench):
    d, url, results, shots = bench["driver"], bench["url"], bench["results"], bench["shots"]

    # -- Benches: the run started from a terminal shows up live --------------------------
    d.get(url + "/")
    other_id = _wait(d, lambda d: next((e.get_attribute("data-run") for e in
                                        d.find_elements(By.CSS_SELECTOR, "article.tile")
                                        if "running" in e.text), None), 30, "terminal run tile")
    assert _meta(results, other_id)["pid"] == bench["other"].pid

    # -- Start: quickstart with its rate changed, through the form ------------------------
    d.get(url + "/start")
    d.execute_script(HOLD_JS)
    stations = [o.get_attribute("value") for o in
                Select(d.find_element(By.ID, "station")).options]
    assert "sim.yaml" in stations and "sim-devices.yaml" not in stations  # station files only
    Select(d.find_element(By.ID, "procedure")).select_by_value("quickstart.yaml")
    rate = _wait(d, lambda d: d.find_element(By.ID, "param-discharge_c"), 10, "discharge_c field")
    assert rate.get_attribute("value") == "1"
    assert "0.1 C to 3 C" in d.find_element(By.ID, "params").text  # range from the declaration
    Select(d.find_element(By.ID, "station")).select_by_value("sim.yaml")
    rate.clear()
    rate.send_keys("2")
    d.find_element(By.ID, "speed").send_keys(SPEED)
    start = d.find_element(By.ID, "start")
    assert not start.is_enabled()  # nothing starts before Check passes

    # A Check whose reply comes after a value changed: ignored (Start stays disabled, no
    # plan for the old values), though that check itself passed.
    _hold(d, "/api/check")
    d.find_element(By.ID, "check").click()
    _wait(d, lambda d: _held(d, "/api/check") == 1, 30, "the check's reply (held)")
    rate.clear()
    rate.send_keys("3")
    _hold(d, "/api/check", False)
    _wait(d, lambda d: d.find_element(By.ID, "start-form").get_attribute(
        "data-stale-replies") == "1", 30, "the late reply, seen and dropped")
    assert not start.is_enabled()
    assert not d.find_elements(By.ID, "check-ok") and d.find_elements(By.ID, "check-stale")
    assert not d.find_element(By.ID, "plan").is_displayed()
    assert not d.find_element(By.ID, "command-line").is_displayed()

    # Check again with 2C: "planning…" and the rough estimate until labctl plan's plan is
    # ready (its replies held here), then the plan itself.
    rate.clear()
    rate.send_keys("2")
    _hold(d, "/api/plan/")
    d.find_element(By.ID, "check").click()
    _wait(d, lambda d: d.find_elements(By.ID, "check-ok"), 30, "check passed")
    assert start.is_enabled()
    _wait(d, lambda d: _held(d, "/api/plan/") >= 1, 30, "a plan reply (held)")
    assert "planning…" in d.find_element(By.ID, "plan-status").text
    assert d.find_element(By.ID, "estimate").text.startswith("Rough estimate: ")
    assert not d.find_elements(By.ID, "plan-summary")
    assert "--param discharge_c=2" in d.find_element(By.ID, "command").text
    _hold(d, "/api/plan/", False)
    _wait(d, lambda d: d.find_elements(By.ID, "plan-summary"), 60, "the plan")
    assert d.find_element(By.ID, "estimate").text == ""  # the plan's figures replace it
    planned = json.loads(subprocess.run(  # the plan next to Start is labctl plan's
        [sys.executable, "-m", "labctl.cli", "plan", str(bench["procs"] / "quickstart.yaml"),
         "--station", str(REPO / "instruments" / "sim.yaml"), "--param", "discharge_c=2",
         "--json"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60).stdout)
    rows = d.find_elements(By.CSS_SELECTOR, "#plan-steps tbody tr")
    assert [r.get_attribute("data-path") for r in rows] == [s["path"] for s in planned["steps"]]
    assert all(r.find_element(By.CSS_SELECTOR, ".path").text == r.get_attribute("data-path")
               for r in rows)  # each step shows its place in the file
    assert {r.get_attribute("data-limit") for r in
            d.find_elements(By.CSS_SELECTOR, "#plan-margins tbody tr")} == set(planned["margins"])
    summary = d.find_element(By.ID, "plan-summary").text
    assert "completed, no warnings" in summary
    assert f"{planned['run_samples']:,} samples" in summary
    assert "null" not in d.find_element(By.ID, "plan").text
    # The expected end: the instant the console means (with its Berlin offset), shown in
    # the browser's own zone (New York), not the console's wall time called UTC.
    shown_end = d.find_element(By.ID, "plan-end")
    end = datetime.fromisoformat(shown_end.get_attribute("data-iso"))
    assert end.utcoffset() == end.astimezone(ZoneInfo(CONSOLE_TZ)).utcoffset()
    assert abs(end.timestamp() - (time.time() + planned["run_duration_s"])) < 120
    local = end.astimezone(ZoneInfo(BROWSER_TZ))
    assert f"{local:%Y-%m-%d %H:%M} ({BROWSER_TZ})" in shown_end.text, shown_end.text
    d.save_screenshot(str(shots / "start-check-passed.png"))
    start.click()
    link = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "#started a"), 30, "started")
    run_id = link.text
    meta = _meta(results, run_id)
    bench["started"].append((run_id, meta["pid"]))
    assert meta["param_overrides"] == {"discharge_c": "2"}  # only what was changed
    assert meta["parameters"]["discharge_c"] == 2.0
    assert meta["pid"] != os.getpid()  # its own process

    # -- the live tile: voltage moves, the 2C discharge current shows ----------------------
    d.get(url + "/")
    _wait(d, lambda d: "Discharge" in _tile_text(d, run_id, ".step"), 30, "discharge step")
    v1 = float(_wait(d, lambda d: _tile_text(d, run_id, ".voltage").replace("-", "") and
                     _tile_text(d, run_id, ".voltage"), 10, "a voltage"))
    _wait(d, lambda d: _tile_text(d, run_id, ".voltage") not in ("", "-", f"{v1:.4f}"), 15,
          "voltage changes without reloading")
    current = float(_wait(d, lambda d: _tile_text(d, run_id, ".current"), 5, "a current"))
    # remaining time: the plan's duration (labctl plan, made in the background) minus elapsed
    _wait(d, lambda d: "≈" in _tile_text(d, run_id, ".remaining"), 40, "remaining time")
    n_steps = 8  # quickstart: rest, discharge, rest, then charge, hold, rest, discharge, rest
    _wait(d, lambda d: f"Step 2 of {n_steps}:" in _tile_text(d, run_id, ".step"), 10, "step n of m")
    assert current == pytest.approx(-2 * CAPACITY_AH, rel=0.02)  # 2C of a 2.2 Ah cell
    d.save_screenshot(str(shots / "benches.png"))

    # -- pause, continue -----------------------------------------------------------------
    _click(d, run_id, "pause")
    _confirm(d, run_id)
    _wait(d, lambda d: _tile_text(d, run_id, ".state") == "paused", 15, "paused")
    _wait(d, lambda d: _tile_text(d, run_id, ".current") == "0.000", 5, "0 A while paused")
    assert "output off" in _tile(d, run_id).text
    d.save_screenshot(str(shots / "benches-paused.png"))
    log = (results / run_id / "log.txt").read_text()
    assert "paused; all outputs set to a safe state" in log  # the engine says outputs are off
    _wait(d, lambda d: _tile(d, run_id).find_element(
        By.CSS_SELECTOR, 'button[data-cmd="continue"]').is_enabled(), 5, "continue enabled")
    _click(d, run_id, "continue")
    _confirm(d, run_id)
    _wait(d, lambda d: _tile_text(d, run_id, ".state") == "running", 15, "running again")

    # -- stop the other run: aborted, with its reason, prominently ------------------------
    _click(d, other_id, "stop")
    _confirm(d, other_id)
    _wait(d, lambda d: _tile_text(d, other_id, ".state") == "aborted", 30, "aborted")
    assert "stop requested from the console" in _tile_text(d, other_id, ".alarm")
    assert _meta(results, other_id)["status"] == "aborted"
    d.save_screenshot(str(shots / "benches-stopped.png"))
    bench["other"].wait(timeout=20)

    # -- the live run page ---------------------------------------------------------------
    d.get(f"{url}/runs/{run_id}")
    n0 = _wait(d, lambda d: d.execute_script(
        "const g = document.getElementById('plot-vit'); return g.data && g.data[0].x.length"),
        20, "live plot drawn")
    _wait(d, lambda d: d.execute_script(
        "return document.getElementById('plot-vit').data[0].x.length") > n0, 15,
        "live plot grows")
    d.save_screenshot(str(shots / "run-live.png"))

    # -- many parameters: the plan and its warnings beside Start, in view ---------------
    d.get(url + "/start")
    Select(d.find_element(By.ID, "procedure")).select_by_value("cycle-life.yaml")
    rpt = _wait(d, lambda d: d.find_element(By.ID, "param-rpt_c_rate"), 10, "rpt_c_rate field")
    assert rpt.get_attribute("value") == "C/3"  # as the procedure writes it
    assert len(d.find_elements(By.CSS_SELECTOR, "#params [data-param]")) == 12
    Select(d.find_element(By.ID, "station")).select_by_value("sim.yaml")
    d.find_element(By.ID, "check").click()
    _wait(d, lambda d: d.find_elements(By.ID, "plan-warnings"), 90, "the plan's warnings")
    assert "--param" not in d.find_element(By.ID, "command").text  # every default kept
    outcome = d.find_element(By.ID, "plan-outcome").text
    assert outcome == "completed, with 1 warning (below)", outcome
    assert "longer than 30 days" in d.find_element(By.ID, "plan-warnings").text
    d.execute_script("window.scrollTo(0, 0)")
    for element in ("start", "plan-summary", "plan-warnings"):
        assert _in_view(d, element), f"{element} is not in view beside the form"
    box = lambda e: d.find_element(By.ID, e).rect  # noqa: E731
    assert box("start")["x"] > box("params")["x"] + box("params")["width"]  # beside the form
    d.save_screenshot(str(shots / "start-plan-many-parameters.png"))
    d.execute_script("document.getElementById('param-pulse_s').scrollIntoView()")
    for element in ("start", "plan-summary"):
        assert _in_view(d, element), f"{element} scrolled away with the parameters"

    # -- a procedure with an error: validate's located message, Start disabled -----------
    d.get(url + "/start")
    Select(d.find_element(By.ID, "procedure")).select_by_value("too-high.yaml")
    _wait(d, lambda d: "declares no parameters" in d.find_element(By.ID, "params").text, 10)
    Select(d.find_element(By.ID, "station")).select_by_value("sim.yaml")
    d.find_element(By.ID, "check").click()
    problems = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#problems li"), 30, "problems")
    shown = " ".join(p.text for p in problems)
    expected = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "validate", str(bench["procs"] / "too-high.yaml"),
         "--station", str(REPO / "instruments" / "sim.yaml"), "--json"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert expected.returncode == 2
    for p in json.loads(expected.stdout)["problems"]:
        assert f"{p['file']}:{p['line']}" in shown and p["message"] in shown
    assert ":5" in shown  # line 5: the charge step
    assert not d.find_element(By.ID, "start").is_enabled()
    d.save_screenshot(str(shots / "start-check-failed.png"))

    # -- the finished run: plots, cycles table, BDF download ------------------------------
    finished = bench["finished"]
    d.get(f"{url}/runs/{finished.name}")
    drawn = _wait(d, lambda d: d.execute_script(
        "const g = document.getElementById('plot-vit');"
        "return g.data && g.querySelector('svg.main-svg') && g.data.map(t => t.x.length)"),
        30, "V/I/T plot drawn")
    assert len(drawn) == 3 and min(drawn) > 100
    import pandas as pd

    cycles_drawn = d.execute_script("return document.getElementById('plot-cycles').data.length")
    assert cycles_drawn == 4  # charge, discharge capacity; coulombic, energy efficiency

    cycles = pd.read_parquet(finished / "cycles.parquet")
    rows = d.find_elements(By.CSS_SELECTOR, "#cycles-table tbody tr")
    assert len(rows) == len(cycles) == 2
    cap = cycles["discharge_capacity_ah"].iloc[-1]
    assert f"{cap:.6g}" in rows[-1].text
    d.save_screenshot(str(shots / "run-finished.png"))
    d.execute_script("window.scrollTo(0, document.getElementById('cycles-plots').offsetTop - 10)")
    d.save_screenshot(str(shots / "run-finished-cycles.png"))
    d.find_element(By.ID, "download-bdf").click()
    target = bench["downloads"] / f"{finished.name}.bdf.csv"
    _wait(d, lambda d: target.is_file() and target.stat().st_size > 0, 20, "BDF downloaded")
    with open(target, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        n_rows = sum(1 for _ in reader)
    assert header[:3] == ["Test Time / s", "Voltage / V", "Current / A"]
    assert n_rows == len(pd.read_parquet(finished / "timeseries.parquet", columns=["voltage_v"]))

    # -- an impedance run: Nyquist and Bode from its spectra, its stored analysis ----------
    eis = bench["eis"]
    d.get(f"{url}/runs/{eis.name}")
    nyquist = _wait(d, lambda d: d.execute_script(
        "const g = document.getElementById('plot-nyquist');"
        "return g.data && g.querySelector('svg.main-svg') && g.data.map(t => [t.x, t.y])"),
        30, "Nyquist drawn")
    spectra = pd.read_parquet(eis / "records" / "spectra.parquet")
    assert sum(len(x) for x, _ in nyquist) == len(spectra)
    x0, y0 = nyquist[0][0][0], nyquist[0][1][0]
    assert x0 == pytest.approx(spectra["z_real_ohm"].iloc[0], rel=1e-5)
    assert y0 == pytest.approx(-spectra["z_imag_ohm"].iloc[0], rel=1e-5)  # -Z'' drawn upwards
    bode = d.execute_script("return document.getElementById('plot-bode').layout.xaxis.type")
    assert bode == "log"
    figures = d.find_elements(By.CSS_SELECTOR, "details.analysis img.figure")
    stored = sorted(p.name for p in (eis / "analysis" / "eis").glob("*.png"))
    assert sorted(f.get_attribute("alt") for f in figures) == stored
    _wait(d, lambda d: all(d.execute_script("return arguments[0].naturalWidth", f) > 0
                           for f in figures), 10, "analysis figures load")
    assert "parameters" in d.find_element(By.CSS_SELECTOR, "details.analysis").text
    d.execute_script("window.scrollTo(0, document.getElementById('spectra-plots').offsetTop - 10)")
    d.save_screenshot(str(shots / "run-eis.png"))

    # -- the station's qualification records ------------------------------------------
    d.get(url + "/qualification")
    session = next((results / "qualification").iterdir())
    summary = json.loads((session / "session.json").read_text())
    page = d.find_element(By.CSS_SELECTOR, "table.qual").text
    for role, record in summary["devices"].items():
        assert f"{role} {record['identity']['serial']}: {record['verdict']}" in page
    d.find_element(By.LINK_TEXT, "report.html").click()
    _wait(d, lambda d: "report.html" in d.current_url and d.find_elements(By.TAG_NAME, "table"),
          10, "qualification report opens")
    d.get(url + "/qualification")
    d.save_screenshot(str(shots / "qualification.png"))

    # -- runs list: search and filter ----------------------------------------------------
    d.get(url + "/runs?status=aborted")
    listed = [e.get_attribute("data-run") for e in d.find_elements(By.CSS_SELECTOR, "#runs-table tr[data-run]")]
    assert listed == [other_id]
    d.get(url + "/runs")
    d.save_screenshot(str(shots / "runs.png"))

    # -- the run outlives the console: stop the console, the run goes on ----------------
    console = bench["console"]
    console.send_signal(signal.SIGINT)
    assert console.wait(timeout=20) == 0
    status_file = results / run_id / "status.json"
    t0 = json.loads(status_file.read_text())["test_time_s"]
    deadline = time.monotonic() + 20
    while json.loads(status_file.read_text())["test_time_s"] <= t0:
        assert time.monotonic() < deadline, "the run stopped with the console"
        time.sleep(0.3)
    assert _meta(results, run_id)["status"] == "running"
    stop = subprocess.run([sys.executable, "-m", "labctl.cli", "stop", run_id, "--results",
                           str(results)], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    deadline = time.monotonic() + 30
    while _meta(results, run_id)["status"] == "running":
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.3)
