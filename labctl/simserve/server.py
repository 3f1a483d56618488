"""A line-based SCPI server over TCP (like an instrument's raw socket on port 5025).

Binds to 127.0.0.1 by default; any address that is not loopback is refused
unless `allow_remote=True` (the simulated bench has no authentication).
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
from typing import Any

from labctl.errors import LabctlError
from labctl.simserve.scpi import ScpiSession
from labctl.simserve.smu import SimSmu

DEFAULT_PORT = 5025
# A SCPI command is a few dozen bytes; an instrument's input buffer is a few KiB. A
# client sending more without a newline is closed (800 MB without one grew to 3 GB).
MAX_LINE_BYTES = 64 * 1024
# One thread per connection: a bench has one or two drivers talking to one SMU.
MAX_CONNECTIONS = 16


def check_bind_address(host: str, allow_remote: bool) -> None:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise LabctlError(f"--host {host!r}: cannot resolve ({exc})") from None
    remote = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if remote and not allow_remote:
        raise LabctlError(f"--host {host!r} is not a loopback address ({', '.join(sorted(remote))}); "
                          "the simulator has no authentication, so it only listens on 127.0.0.1 "
                          "unless --allow-remote is given")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ScpiServer = self.server  # type: ignore[assignment]
        session = ScpiSession(server.smu, server.personality)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            raw = self.rfile.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                return  # no newline within the cap: drop the client, keep the memory
            message = raw.decode("ascii", errors="replace").strip()
            if not message:
                continue
            with server.smu.lock:
                answer = session.handle(message)
            if answer is not None:
                self.wfile.write(answer.encode("ascii") + b"\n")
                self.wfile.flush()


class ScpiServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, smu: SimSmu, personality: str, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, allow_remote: bool = False):
        check_bind_address(host, allow_remote)
        self.smu = smu
        self.personality = personality
        ScpiSession(smu, personality)  # refuse an unknown personality before binding
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, at most MAX_CONNECTIONS; more are closed at once."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def port(self) -> int:
        return self.server_address[1]


def build_smu(cell: Any, *, time_per_read_s: float | None, speed: float | None,
              **options: Any) -> SimSmu:
    from labctl.clock import VirtualClock
    from labctl.sim.world import SimWorld

    ambient = options.pop("ambient_c", 25.0)
    return SimSmu(SimWorld(VirtualClock(), ambient_c=ambient), cell,
                  time_per_read_s=time_per_read_s, speed=speed, **options)


def serve_in_thread(server: ScpiServer) -> threading.Thread:
    """Serve on a daemon thread (tests, notebooks); stop with server.shutdown()."""
    thread = threading.Thread(target=server.serve_forever, name="labctl-sim-serve", daemon=True)
    thread.start()
    return thread
