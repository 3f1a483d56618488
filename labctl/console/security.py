"""The console's security rules: who may connect, which requests may change state,
and which files a path from the browser may open.

* Access. On loopback (the default) anyone on this computer may read the pages,
  as they may read the results store. With `--allow-remote` every request needs
  the access token: `?token=` once (it then lives in an HttpOnly, SameSite=Strict
  cookie), or `Authorization: Bearer`, or the `X-Labctl-Token` header.
* State changes (start, pause, continue, stop) are POSTs only, and each carries
  the per-process form token that the pages embed (a hidden field or the
  `X-Labctl-Token` header), also on loopback: another web site open in the same
  browser can neither read a page (same-origin policy) nor guess the token, so
  it cannot post a form here. The Host header must name this console (defeats
  DNS rebinding), and a present Origin must be this console's.
* No framing by other sites (clickjacking), no MIME sniffing, no Referer.
* Files. A name from the browser is a relative path inside one configured
  folder; absolute paths, `..`, and anything that resolves (through symlinks)
  outside the folder are refused as "not found".
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from labctl.errors import LabctlError

COOKIE = "labctl_console"
HEADER = "x-labctl-token"
FORM_FIELD = "token"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class NotFound(Exception):
    """A path from the browser that names nothing we may show (always answered 404)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The access token stored in `path` (mode 0600), or a new one written there.

    Returns (token, created). A stored token readable by other users is refused:
    anyone who can read it can command the benches.
    """
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LabctlError(f"{path}: token file is readable by other users "
                              f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise LabctlError(f"{path}: token file holds no usable token (at least 16 characters)")
        return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)  # whatever the umask
    return token, True


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def inside(root: Path, name: str) -> Path:
    """`root/name` when it is an existing file or folder inside `root`; NotFound otherwise.

    `name` comes from the browser: it must be relative, without `..`, and must
    not resolve (through any symlink) to a place outside `root`.
    """
    if not name or "\x00" in name or "\\" in name:
        raise NotFound(name)
    pure = PurePosixPath(name)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts) or name.startswith("~"):
        raise NotFound(name)
    base = root.resolve()
    try:
        target = (base / pure).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound(name) from None
    if target != base and not target.is_relative_to(base):
        raise NotFound(name)
    return target


def run_folder(results: Path, run_id: str) -> Path:
    """The run directory `run_id` directly inside the results store; NotFound otherwise."""
    if not _RUN_ID.match(run_id or ""):
        raise NotFound(run_id)
    path = inside(results, run_id)
    if not path.is_dir() or path.parent != results.resolve() or not (path / "run.json").is_file():
        raise NotFound(run_id)
    return path


@dataclass
class Guard:
    """What the middleware checks; `access_token` is None on loopback."""

    form_token: str
    access_token: str | None
    allowed_hosts: tuple[str, ...]


class GuardMiddleware:
    """Host check, access token (remote), form token on every POST, GET-only otherwise."""

    def __init__(self, app: ASGIApp, guard: Guard):
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, _with_headers(send))
            return
        token = request.query_params.get("token")
        if self.guard.access_token and token is not None and request.method == "GET":
            # First visit with ?token=: keep it in a cookie, drop it from the address bar.
            url = request.url.remove_query_params("token")
            response = RedirectResponse(str(url.path) + (f"?{url.query}" if url.query else ""),
                                        status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            await response(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))

    def _refusal(self, request: Request) -> Response | None:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host not in self.guard.allowed_hosts:
            return PlainTextResponse(f"unknown host {host!r}", status_code=400)
        if self.guard.access_token and not self._has_access(request):
            return PlainTextResponse(
                "forbidden: this console needs its access token (see the address printed when it "
                "started, or the token file)", status_code=403)
        if request.method in ("GET", "HEAD"):
            return None
        if request.method != "POST":
            return PlainTextResponse("method not allowed", status_code=405,
                                     headers={"Allow": "GET, HEAD, POST"})
        origin = request.headers.get("origin")
        if origin and origin != "null":
            o = urlsplit(origin)
            if (o.hostname or "").lower() not in self.guard.allowed_hosts or \
                    str(o.port or "") != str(request.url.port or ""):
                return PlainTextResponse("forbidden: cross-site request", status_code=403)
        # The form token itself is checked by each POST handler (it lives in the body).
        return None

    def _has_access(self, request: Request) -> bool:
        want = self.guard.access_token or ""
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        return any(same(t, want) for t in (request.cookies.get(COOKIE), bearer,
                                           request.headers.get(HEADER),
                                           request.query_params.get("token")))


# No framing (a page of another site cannot overlay the Stop button: clickjacking), no
# MIME sniffing, and no Referer carrying a console address (or a ?token=) elsewhere.
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]


def _with_headers(send: Send) -> Send:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
        await send(message)
    return wrapped


def allowed_hosts(host: str) -> tuple[str, ...]:
    """Host header values this console answers to."""
    names = {host.lower().strip("[]")}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names |= {"127.0.0.1", "localhost", "::1"}
    if host in ("0.0.0.0", "::"):
        import socket

        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        try:
            names |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    return tuple(sorted(names))
