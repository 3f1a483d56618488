"""`labctl sim serve` as a user runs it: loopback only, SCPI answers, real driver over TCP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.cells import load_cell
from labctl.errors import LabctlError
from labctl.simserve.scpi import ScpiSession, normalise
from labctl.simserve.server import ScpiServer, build_smu, check_bind_address

REPO = Path(__file__).resolve().parent.parent.parent
PROC = Path(__file__).parent / "data" / "pyvisa-sim-check.yaml"


def _ask(sock_file, sock, line: str) -> str:
    sock.sendall(line.encode() + b"\n")
    return sock_file.readline().decode().strip()


def stop_process(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGINT, and SIGKILL if it has not ended `timeout_s` later (a server that ignores
    SIGINT must not outlive the test); the pipes are closed either way."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def server_process(tmp_path):
    ready = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "sim", "serve", "--port", "0",
                             "--ready-file", str(ready), "--instrument", "keithley-2400"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text().strip():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield proc, int(ready.read_text())
    finally:
        stop_process(proc)


def test_teardown_kills_a_process_that_ignores_sigint():
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys, time\n"
                              "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                              "print('ready', flush=True)\n"
                              "time.sleep(120)\n"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # SIGINT is ignored from here on
        started = time.monotonic()
        stop_process(child, timeout_s=1.0)
        assert child.poll() == -signal.SIGKILL  # killed, not ended by SIGINT
        assert time.monotonic() - started < 30
    finally:
        if child.poll() is None:
            child.kill()


def test_serve_answers_scpi_and_runs_a_procedure_through_the_real_driver(tmp_path,
                                                                          server_process):
    proc, port = server_process
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        f = sock.makefile("rb")
        assert _ask(f, sock, "*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400,")
        sock.sendall(b"BOGUS:COMMAND 1\n")
        assert _ask(f, sock, "SYST:ERR?") == '-113,"Undefined header"'
        sock.sendall(b":SOURCE:CURRENT 5\n")  # beyond the SMU's 1.05 A
        assert _ask(f, sock, "SYST:ERR?") == '-222,"Parameter data out of range"'
        assert _ask(f, sock, "SYST:ERR?") == '0,"No error"'
    station = tmp_path / "station.yaml"
    station.write_text("name: via sim serve\nclock: virtual\ninstruments:\n  cycler:\n"
                       f"    driver: keithley-2400\n    address: TCPIP::127.0.0.1::{port}::SOCKET\n"
                       "    ranges: {max_current_a: 1.05, max_voltage_v: 5.0}\n")
    run = subprocess.run([sys.executable, "-m", "labctl.cli", "run", str(PROC), "--station",
                          str(station), "--results", str(tmp_path / "r"), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    out = json.loads(run.stdout)
    assert run.returncode == 0 and out["status"] == "completed", run.stdout + run.stderr
    # 0.5 A for 5 s, counted by the driver from the simulated cell's currents.
    assert abs(out["summary"]["discharge_capacity_ah"] - 0.5 * 5 / 3600) < 0.5 * 0.2 / 3600
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0


def test_serve_refuses_a_non_loopback_address():
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "sim", "serve", "--host",
                           "0.0.0.0", "--port", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--allow-remote" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bind_check_allows_loopback_and_remote_only_when_told():
    check_bind_address("127.0.0.1", allow_remote=False)
    check_bind_address("localhost", allow_remote=False)
    with pytest.raises(LabctlError):
        check_bind_address("0.0.0.0", allow_remote=False)
    check_bind_address("0.0.0.0", allow_remote=True)
    with pytest.raises(LabctlError, match="not a loopback"):
        ScpiServer(build_smu(load_cell(REPO / "fixtures/cells/lfp-2p2ah.yaml"),
                             time_per_read_s=0.1, speed=None), "keithley-2400", host="0.0.0.0",
                   port=0)


def test_scpi_short_forms_and_2450_reading_elements():
    assert normalise(":SOURCE:CURRENT:LEVEL") == "SOUR:CURR"
    assert normalise(":SENSE:VOLTAGE:PROTECTION?") == "SENS:VOLT:PROT?"
    assert normalise(":SOUR:CURR:LEV:IMM:AMPL") == "SOUR:CURR"
    assert normalise("SYSTEM:ERROR?") == "SYST:ERR?"
    smu = build_smu(load_cell(REPO / "fixtures/cells/lfp-2p2ah.yaml"), time_per_read_s=1.0,
                    speed=None)
    s = ScpiSession(smu, "keithley-2450")
    for cmd in (':SENS:FUNC "VOLT"', ":SOUR:FUNC CURR", ":SOUR:CURR:VLIM 4",
                ":SOUR:CURR:LEV -0.5", "OUTPUT ON"):
        assert s.handle(cmd) is None
    v, i, t = (float(x) for x in s.handle(':READ? "defbuffer1", READ, SOUR, REL').split(","))
    assert i == -0.5 and 3.0 < v < 3.4 and t == 1.0  # one reading = 1 s of virtual time
    v2, _, t2 = (float(x) for x in s.handle(':READ? "defbuffer1", READ, SOUR, REL').split(","))
    assert t2 == 2.0 and v2 < v  # discharging: the voltage falls (RC polarisation)
    assert s.handle("SYST:ERR?") == '0,"No error;0;0 0"'
