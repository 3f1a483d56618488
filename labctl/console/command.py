"""`labctl console`: the operator console in the browser (needs `pip install 'labctl[console]'`)."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from labctl.commands.common import console, results_option, user_errors
from labctl.errors import LabctlError

DEFAULT_TOKEN_FILE = Path("~/.config/labctl/console-token")


def _folder(value: str | None, what: str, default: str | None = None) -> Path | None:
    """The folder as an absolute path; None when not given (or the default is absent)."""
    if value is None or (value == default and not Path(value).is_dir()):
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise LabctlError(f"--{what} {value}: not a folder")
    return path


@click.command()
@results_option
@click.option("--procedures", default="procedures", show_default=True,
              help="Folder of the procedure files the Start form offers.")
@click.option("--stations", default="instruments", show_default=True,
              help="Folder of the station files the Start form offers.")
@click.option("--cells", default=None, help="Folder of cell files (the presets are always offered).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --allow-remote.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host; every request then needs the access token.")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help=f"Access token file (mode 0600; created with a new token if missing; "
                   f"default {DEFAULT_TOKEN_FILE}). Only used with --allow-remote.")
@user_errors
def console_cmd(results: str, procedures: str, stations: str, cells: str | None, host: str,
                port: int, allow_remote: bool, token_file: str | None) -> None:
    """Operator console in the browser: live benches, start/pause/stop, runs and plots."""
    try:
        import uvicorn

        from labctl.console.app import ConsoleConfig, create_app, warm_up
    except ImportError as exc:
        raise LabctlError(f"the console needs its extra: pip install 'labctl[console]' "
                          f"(missing: {exc.name})") from None
    from labctl.console.estimate import RemainingEstimator
    from labctl.console.security import allowed_hosts, is_loopback, load_or_create_token, new_token

    remote = not is_loopback(host)
    if remote and not allow_remote:
        raise LabctlError(f"--host {host} is not a loopback address: add --allow-remote "
                          "(every request will then need the access token)")
    access_token = None
    announce = ""
    if remote:
        path = Path(token_file or DEFAULT_TOKEN_FILE).expanduser()
        access_token, created = load_or_create_token(path)
        if created:
            announce = f"?token={access_token}"  # printed this once; stored in the 0600 file
            console.print(f"new access token stored in {path} (mode 0600)", highlight=False)
        else:
            console.print(f"access token: the one in {path}", highlight=False)
    results_path = Path(results).expanduser().resolve()
    results_path.mkdir(parents=True, exist_ok=True)
    config = ConsoleConfig(
        results=results_path,
        procedures=_folder(procedures, "procedures", default="procedures"),
        stations=_folder(stations, "stations", default="instruments"),
        cells=_folder(cells, "cells"),
        host=host, port=port, access_token=access_token, form_token=new_token(),
        allowed_hosts=allowed_hosts(host), estimator=RemainingEstimator(),
    )
    app = create_app(config)
    threading.Thread(target=warm_up, name="console-warm-up", daemon=True).start()
    sock = _listen(host, port)
    # A Benches page keeps an event stream open: do not wait for it on Ctrl-C.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    config.extra["stopping"] = lambda: server.should_exit
    shown_host = f"[{host}]" if ":" in host else host
    bound = sock.getsockname()[1]
    console.print(f"labctl console: http://{shown_host}:{bound}/{announce}", highlight=False)
    console.print("Ctrl-C stops the console; runs it started go on.", highlight=False)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once it has stopped
        pass
    finally:
        sock.close()
        app.state.plans.close()  # no plan's child process outlives the console
    console.print("console stopped", highlight=False)


def _listen(host: str, port: int):
    """The listening socket, bound here so a busy port is a clear message (exit 2)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LabctlError(f"cannot listen on {host}:{port}: {exc.strerror}"
                          + (" (another console? choose --port)" if exc.errno == 98 else "")
                          ) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock
