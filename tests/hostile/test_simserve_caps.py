"""`labctl sim serve` caps what one client can take (issue 13 §3, Medium).

No line-length cap (800 MB without a newline grew the server to 3 GB) and one
thread per connection without limit.
"""

from __future__ import annotations

import socket

import pytest

from labctl.cells import load_cell
from labctl.simserve.server import (
    MAX_CONNECTIONS,
    MAX_LINE_BYTES,
    ScpiServer,
    build_smu,
    serve_in_thread,
)


@pytest.fixture
def server():
    smu = build_smu(load_cell("lfp-2p2ah"), time_per_read_s=0.1, speed=None)
    srv = ScpiServer(smu, "keithley-2400", port=0)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def _connect(srv) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    return sock


def _ask(sock: socket.socket, command: bytes) -> bytes:
    sock.sendall(command + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_line_without_newline_beyond_the_cap_drops_only_that_client(server):
    good = _connect(server)
    assert b"2400" in _ask(good, b"*IDN?")
    flood = _connect(server)
    try:
        sent = 0
        chunk = b"A" * 65536
        while sent < 4 * MAX_LINE_BYTES:
            flood.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server hung up mid-flood: what we want
    flood.settimeout(10)
    try:
        assert flood.recv(1) == b""  # closed by the server, nothing answered
    except ConnectionResetError:
        pass
    assert b"2400" in _ask(good, b"*IDN?")  # the well-behaved client is untouched
    good.close()
    flood.close()


def test_connections_beyond_the_cap_are_closed_at_once(server):
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    for sock in held:
        assert b"2400" in _ask(sock, b"*IDN?")
    extra = _connect(server)
    extra.settimeout(10)
    try:
        extra.sendall(b"*IDN?\n")
        assert extra.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass
    extra.close()
    held.pop().close()
    # A slot freed is usable again (the count is released when a client leaves).
    for _ in range(50):
        again = _connect(server)
        again.settimeout(10)
        try:
            answer = _ask(again, b"*IDN?")
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        again.close()
        if answer:
            break
    assert b"2400" in answer
    for sock in held:
        sock.close()
