"""`labctl sim serve`: run the SCPI simulator until Ctrl-C."""

from __future__ import annotations

import sys

from labctl.errors import LabctlError


def serve(instrument: str, cell: str | None, host: str, port: int, allow_remote: bool,
          time_per_read_s: float | None, speed: float | None, initial_soc: float | None,
          seed: int, noise_v: float, noise_a: float, gain_error: float, offset_v: float,
          offset_a: float, ready_file: str | None = None) -> None:
    from labctl.cells import DEFAULT_CELL, load_cell
    from labctl.simserve.server import ScpiServer, build_smu

    if speed is not None and time_per_read_s is not None:
        raise LabctlError("give either --time-per-read or --speed, not both")
    if speed is None and time_per_read_s is None:
        time_per_read_s = 0.1
    if not 0 <= port <= 65535:
        raise LabctlError(f"--port must be 0..65535, got {port}")
    spec = load_cell(cell or DEFAULT_CELL)
    noise = {"voltage_v": noise_v, "current_a": noise_a} if (noise_v or noise_a) else None
    smu = build_smu(spec, time_per_read_s=time_per_read_s, speed=speed, initial_soc=initial_soc,
                    seed=seed, noise=noise, gain_error=gain_error, offset_v=offset_v,
                    offset_a=offset_a)
    try:
        server = ScpiServer(smu, instrument, host=host, port=port, allow_remote=allow_remote)
    except OSError as exc:
        raise LabctlError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    timing = (f"{time_per_read_s:g} s of virtual time per reading" if time_per_read_s is not None
              else f"{speed:g}x wall-clock time")
    print(f"labctl sim serve: {instrument} with {spec.name} on TCPIP::{bound_host}::{bound_port}::SOCKET "
          f"({timing}); Ctrl-C stops", file=sys.stderr, flush=True)
    if ready_file:  # lets a script or test learn the port (with --port 0) when it is listening
        from pathlib import Path

        Path(ready_file).write_text(f"{bound_port}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
