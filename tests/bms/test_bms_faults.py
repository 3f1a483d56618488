"""Fault injection on a BMS with slave nodes: every fault raises its flag and puts the pack in
its safe state (contactors open) within the time the configuration gives, the frame checks
catch the bus faults, and the validation steps' verdicts follow. Expected times come from the
station file (delays, latency, timeouts, plausibility limit) and the DBC's message periods."""

from __future__ import annotations

import cantools
import pandas as pd
import pytest
import yaml
from bms_helpers import edited_station, run_procedure, station_settings

from labctl.units import parse_quantity
from tests.support import REPO

MODULAR = REPO / "instruments" / "sim-bms-modular.yaml"
PROC = REPO / "procedures" / "bms" / "fault-injection-modular.yaml"
DB = cantools.database.load_file(str(REPO / "fixtures" / "dbc" / "labctl-bms.dbc"))
JITTER_MARGIN_S = 0.003  # the station's frame jitter is |N(0, 0.5 ms)|: 6 sigma


def _si(text) -> float:
    return parse_quantity(str(text), allow_bare=True).value


def _period(name: str) -> float:
    return DB.get_message_by_name(name).cycle_time / 1000.0


CFG = station_settings(MODULAR)
TICK, LAT = _si(CFG["tick_s"]), _si(CFG["latency_s"])
SENSOR_DELAY = _si(CFG["sensor"]["delay"])
PLAUSIBILITY = _si(CFG["sensor"]["plausibility_v"])
SLAVE_TIMEOUT = _si(CFG["slave_timeout_s"])
P_FAULTS, P_STATUS = _period("BMS_Faults"), _period("BMS_Status")


@pytest.fixture(scope="module")
def modular_run(tmp_path_factory):
    return run_procedure(PROC, MODULAR, tmp_path_factory.mktemp("results"))


def _gaps(sig: pd.DataFrame) -> pd.DataFrame:
    """Per message: the largest interval between its frames and the time it began."""
    rows = {}
    for name, g in sig.groupby("message", observed=True):
        t = g.test_time_s.drop_duplicates().sort_values().to_numpy()
        if len(t) > 1:
            k = int((t[1:] - t[:-1]).argmax())
            rows[name] = {"gap": t[k + 1] - t[k], "start": t[k]}
    return pd.DataFrame(rows).T


def _signals(run_dir, k: int) -> pd.DataFrame:
    """Decoded frames of the k-th logged step (1-based), as the run directory holds them."""
    files = sorted((run_dir / "can").glob("step-*-signals.parquet"))
    return pd.read_parquet(files[k - 1])


@pytest.mark.parametrize("fault,extra_s", [
    ("open_wire", 0.0),
    ("stuck_sensor", 0.0),  # under load the stuck reading leaves the pack voltage at once
    ("drifting_sensor", PLAUSIBILITY / 0.05),  # the drift (0.05 V/s) must first pass the limit
])
def test_sensor_faults_flag_and_go_safe_in_the_configured_time(modular_run, fault, extra_s):
    _, _, checks = modular_run
    # the reading reaches the master after the latency; the flag needs the sensor delay; the
    # next Faults (Status) frame carries it: at most a tick and a frame period later
    due = LAT + extra_s + SENSOR_DELAY
    flag = checks.loc[f"{fault}.fault_sensor", "value"]
    assert due - 1e-6 <= flag <= due + TICK + P_FAULTS + JITTER_MARGIN_S, (fault, flag, due)
    safe = checks.loc[f"{fault}.safe_state", "value"]
    assert due - 1e-6 <= safe <= due + TICK + P_STATUS + JITTER_MARGIN_S, (fault, safe, due)
    assert checks.loc[f"{fault}.fault_sensor", "verdict"] == "pass"
    assert checks.loc[f"{fault}.safe_state", "verdict"] == "pass"


def test_dead_module_is_flagged_after_its_slave_timeout(modular_run):
    out, _, checks = modular_run
    sig = _signals(out.path, 1)  # step 1: module2 goes silent
    # module 2 carries cells 5-8: the messages with those cells' voltages/temperatures
    per_module = CFG["cells_per_module"]
    mod2 = {f"BMS_CellVoltages{2}", f"BMS_CellTemps{2}"}
    assert per_module == 4
    gaps = _gaps(sig)
    t_last = gaps.loc[list(mod2), "start"].max()  # its last frame before it died
    assert (gaps.loc[list(mod2), "gap"] > 2.0).all()
    # the other modules and the master kept sending (no gap beyond their own period)
    others = gaps.drop(list(mod2))
    periods = pd.Series({n: _period(n) for n in others.index})
    assert (others.gap < periods + JITTER_MARGIN_S).all(), others
    faults = sig[(sig.message == "BMS_Faults") & (sig.signal == "Flt_Comm")]
    first = faults[(faults.value > 0.5) & (faults.test_time_s > t_last)].test_time_s.min()
    before = faults[faults.test_time_s < first].test_time_s.max()
    # the master sets Flt_Comm at the first tick more than the timeout after the last frame
    assert first >= t_last + SLAVE_TIMEOUT - 1e-6
    assert before < t_last + SLAVE_TIMEOUT + TICK + JITTER_MARGIN_S
    status = sig[(sig.message == "BMS_Status") & (sig.signal == "ContactorClosed")]
    opened = status[(status.value < 0.5) & (status.test_time_s > t_last)].test_time_s.min()
    assert t_last + SLAVE_TIMEOUT - 1e-6 <= opened <= t_last + SLAVE_TIMEOUT + TICK + P_STATUS \
        + JITTER_MARGIN_S
    # the step's own measurement (from the injection) is within the timeout + one frame
    assert checks.loc["dead_node.fault_comm", "value"] <= SLAVE_TIMEOUT + TICK + P_FAULTS \
        + JITTER_MARGIN_S
    assert checks.loc["dead_node.fault_comm", "verdict"] == "pass"
    assert checks.loc["dead_node.safe_state", "verdict"] == "pass"


def test_frame_faults_are_caught_by_the_timing_checks(modular_run):
    out, run, checks = modular_run
    cfg = {s["bms_fault_injection"]["fault"] + str(i): s["bms_fault_injection"]
           for i, s in enumerate(yaml.safe_load(PROC.read_text())["steps"][:-1])}
    drop = next(v for k, v in cfg.items() if k.startswith("drop_frames"))
    # three consecutive frames dropped: one counter jump
    assert checks.loc["drop_frames.BMS_CellVoltages1.counter_errors", "value"] == 1
    assert drop["count"] == 3
    # a delay d on a frame of period P: the gap before it is P + d (a timeout above 3 P) ...
    d_gap = _si(next(v for k, v in cfg.items() if k.startswith("delay_frames")
                     and v["expect"] == "max_gap")["delay"])
    gap = checks.loc["delay_frames.BMS_Status.max_gap", "value"]
    assert gap == pytest.approx(P_STATUS + d_gap, abs=JITTER_MARGIN_S)
    assert P_STATUS + d_gap > 3 * P_STATUS  # the procedure's timeout limit is 3 periods
    # ... and a small delay shows as jitter d (limit: 10 % of the period)
    d_jit = _si(next(v for k, v in cfg.items() if k.startswith("delay_frames")
                     and v["expect"] == "jitter")["delay"])
    jit = checks.loc["delay_frames.BMS_Faults.jitter", "value"]
    assert jit == pytest.approx(d_jit, abs=JITTER_MARGIN_S) and d_jit > 0.1 * P_FAULTS
    assert checks.loc["bad_checksum.BMS_CellVoltages1.checksum_errors", "value"] == 2
    for name in ("drop_frames.detected_counter_errors", "delay_frames.detected_max_gap",
                 "delay_frames.detected_jitter", "bad_checksum.detected_checksum_errors"):
        assert checks.loc[name, "verdict"] == "pass", name
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
    assert run.analysis_summary("bms")["verdict"] == "pass"


@pytest.mark.parametrize("topology,node,cells", [
    ("master-slave", "module3", range(9, 13)),
    ("distributed", "cell13", range(13, 17)),
])
def test_dead_node_on_other_topologies_and_a_too_tight_spec_fails(tmp_path, topology, node, cells):
    def edit(bms):
        bms["topology"] = topology

    station = edited_station(tmp_path, edit, MODULAR)
    proc = tmp_path / "dead.yaml"
    tight = SLAVE_TIMEOUT - 0.2  # a spec shorter than the BMS's timeout must fail
    proc.write_text(
        "name: dead\nrequires: [bms]\nsteps:\n"
        f"  - bms_fault_injection: {{fault: dead_node, node: {node}, within: 1 s}}\n"
        f"  - bms_fault_injection: {{fault: dead_node, node: {node}, within: {tight} s}}\n"
        "  - bms_report: {}\n")
    out, run, _ = run_procedure(proc, station, tmp_path / "results")
    rows = run.records("bms_checks")
    first, second = rows[rows.name == "dead_node.fault_comm"].itertuples()
    assert first.verdict == "pass" and second.verdict == "fail"
    assert SLAVE_TIMEOUT - P_FAULTS <= first.value <= SLAVE_TIMEOUT + TICK + P_FAULTS + \
        JITTER_MARGIN_S
    # the silent node's cells are exactly those of the messages that stopped
    sig = _signals(out.path, 1)
    gaps = _gaps(sig)
    stopped = set(gaps[gaps.gap > 1.0].index)
    expected = {f"BMS_CellVoltages{(min(cells) - 1) // 4 + 1}",
                f"BMS_CellTemps{(min(cells) - 1) // 4 + 1}"}
    assert stopped == expected
    assert run.analysis_summary("bms")["verdict"] == "fail"
