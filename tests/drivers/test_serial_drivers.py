"""Serial drivers against simulated devices on a pseudo-terminal (the driver opens the pty's
slave end like /dev/ttyUSB0): ESPEC-style chamber, load-cell pressure rig, TC logger."""

from __future__ import annotations

import math

import pytest

from labctl.cells import load_cell
from labctl.errors import InstrumentError, InstrumentTimeout, LabctlError
from labctl.simserve.serial_devices import (
    PtyDevice,
    SimEspecController,
    SimForceController,
    SimTcLogger,
)
from labctl.stations.build import open_station
from labctl.stations.load import load_station

CELL = "fixtures/cells/lfp-2p2ah.yaml"


@pytest.fixture
def device():
    made = []

    def make(responder):
        dev = PtyDevice(responder)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


def _open(tmp_path, role, body):
    path = tmp_path / "station.yaml"
    path.write_text(f"name: serial bench\nclock: virtual\ninstruments:\n  {role}:\n{body}")
    return open_station(load_station(path), load_cell(CELL))


def test_espec_chamber_setpoint_reading_alarm_and_safe_state(tmp_path, device):
    ctl = SimEspecController(temperature_c=22.0)
    dev = device(ctl)
    station = _open(tmp_path, "chamber",
                    f"    driver: espec\n    port: {dev.port}\n    timeout_s: 0.5\n"
                    "    ranges: {min_temperature_c: -20, max_temperature_c: 90}\n"
                    "    safe_setpoint_c: 23\n    calibration_due: 2027-02-28\n")
    chamber = station["chamber"]
    ident = station.identities()["chamber"]
    assert ident["model"] == "SCP-220" and ident["calibration_due"] == "2027-02-28"
    chamber.set_temperature(40.0)
    assert dev.lines[-2:] == ["TEMP, S40.0", "MODE, CONSTANT"]
    assert ctl.setpoint_c == 40.0 and ctl.mode == "CONSTANT"
    assert chamber.temperature_c() == 31.0  # halfway from 22 °C (the device's first-order step)
    assert chamber.interlock_fault() is None
    ctl.alarms = 2
    assert "2 active alarm" in chamber.interlock_fault()
    with pytest.raises(InstrumentError, match=r"100 °C is outside -20..90 °C"):
        chamber.set_temperature(100.0)
    station.close()  # safe state first: 23 °C, constant mode
    assert ctl.setpoint_c == 23.0


def test_espec_refusal_is_an_instrument_error(tmp_path, device):
    dev = device(SimEspecController())
    station = _open(tmp_path, "chamber", f"    driver: espec\n    port: {dev.port}\n"
                                         "    ranges: {min_temperature_c: -100, max_temperature_c: 300}\n")
    with pytest.raises(InstrumentError, match="refused: DATA OUT OF RANGE"):
        station["chamber"].set_temperature(200.0)  # allowed by the ranges, not by the controller
    station.close()


def test_pressure_rig_converts_mpa_to_newtons_and_holds_on_safe_state(tmp_path, device):
    ctl = SimForceController()
    dev = device(ctl)
    station = _open(tmp_path, "press",
                    f"    driver: pressure-serial\n    port: {dev.port}\n    area_mm2: 78.5\n"
                    "    max_force_n: 10000\n"
                    "    ranges: {min_pressure_mpa: 0, max_pressure_mpa: 100, max_ramp_mpa_per_s: 2}\n")
    rig = station["press"]
    assert station.identities()["press"]["serial"] == "SIM-LC-0001"
    rig.set_pressure(10.0, ramp_mpa_per_s=0.5)
    assert dev.lines[-2:] == ["RATE 39.2", "FSET 785.0"]  # 0.5 MPa/s and 10 MPa on 78.5 mm²
    assert math.isclose(rig.pressure_mpa(), 10.0)
    with pytest.raises(InstrumentError, match="ramp 5 MPa/s is above 2 MPa/s"):
        rig.set_pressure(20.0, ramp_mpa_per_s=5.0)
    station.close()
    assert dev.lines[-1] == "HOLD" and ctl.held


def test_pressure_rig_refuses_ranges_beyond_the_load_cell(tmp_path, device):
    dev = device(SimForceController())
    with pytest.raises(LabctlError, match="needs 7850 N, more than the load cell's max_force_n 5000"):
        _open(tmp_path, "press", f"    driver: pressure-serial\n    port: {dev.port}\n"
                                 "    area_mm2: 78.5\n    max_force_n: 5000\n"
                                 "    ranges: {max_pressure_mpa: 100}\n")


def test_tc_logger_converts_kelvin_and_reports_open_thermocouple(tmp_path, device):
    dev = device(SimTcLogger([25.0, 31.5, None]))
    station = _open(tmp_path, "thermometer",
                    f"    driver: tc-logger\n    port: {dev.port}\n"
                    "    channels: [cell_top, cell_bottom, ambient]\n")
    temps = station["thermometer"].read_temperatures_c()
    assert math.isclose(temps["cell_top"], 25.0, abs_tol=0.006)  # 2-decimal kelvin on the wire
    assert math.isclose(temps["cell_bottom"], 31.5, abs_tol=0.006)
    assert math.isnan(temps["ambient"])
    assert station.identities()["thermometer"]["thermocouples"] == "K,K,K"
    station.close()


def test_silent_device_is_an_instrument_timeout(tmp_path, device):
    logger = SimTcLogger([25.0])
    dev = device(lambda line: None if line == "READ?" else logger(line))
    station = _open(tmp_path, "thermometer", f"    driver: tc-logger\n    port: {dev.port}\n"
                                             "    timeout_s: 0.2\n    channels: [cell]\n")
    with pytest.raises(InstrumentTimeout, match="no answer in time to 'READ\\?'"):
        station["thermometer"].read_temperatures_c()
    station.close()


def test_missing_port_is_a_clear_error(tmp_path):
    with pytest.raises(LabctlError, match="needs 'port:'"):
        _open(tmp_path, "thermometer", "    driver: tc-logger\n    channels: [a]\n")


def test_espec_over_tcp_socket_url(tmp_path):
    """The same driver on a LAN serial adapter: port: socket://HOST:PORT."""
    import socketserver
    import threading

    ctl = SimEspecController(temperature_c=20.0)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for raw in self.rfile:
                answer = ctl(raw.decode().strip())
                if answer is not None:
                    self.wfile.write(answer.encode() + b"\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        station = _open(tmp_path, "chamber", "    driver: espec\n"
                        f"    port: socket://127.0.0.1:{server.server_address[1]}\n")
        station["chamber"].set_temperature(30.0)
        assert ctl.setpoint_c == 30.0
        assert station["chamber"].temperature_c() == 25.0
        station.close()
    finally:
        server.shutdown()
        server.server_close()
