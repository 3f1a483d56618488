"""The console's security rules, through the real application (Starlette's test client)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the console extra is not installed: pip install -e '.[console]'")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")

with warnings.catch_warnings():  # starlette's note about httpx vs httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from labctl.console.app import ConsoleConfig, create_app  # noqa: E402
from labctl.console.launch import list_files  # noqa: E402
from labctl.console.security import NotFound, inside, load_or_create_token  # noqa: E402

FORM = "form-token-0123456789abcdef"
ACCESS = "access-token-0123456789abcdef"
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def folders(tmp_path):
    results = tmp_path / "results"
    run = results / "20260101-000000-demo-cell-abcd"
    (run / "analysis" / "fit").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": run.name, "status": "completed"}))
    (run / "analysis" / "fit" / "summary.json").write_text("{}")
    procs = tmp_path / "procedures"
    procs.mkdir()
    (procs / "ok.yaml").write_text("name: ok\nsteps:\n  - Rest for 1 s\n")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "secret.yaml").write_text("name: secret\nparameters: {x: 1}\nsteps: [Rest for 1 s]\n")
    (procs / "link.yaml").symlink_to(outside / "secret.yaml")
    (procs / "linkdir").symlink_to(outside)
    (run / "analysis" / "fit" / "escape.json").symlink_to(outside / "secret.yaml")
    stations = tmp_path / "stations"
    stations.mkdir()
    return {"results": results, "run": run, "procedures": procs, "stations": stations,
            "outside": outside}


def client(folders, access=None):
    config = ConsoleConfig(results=folders["results"], procedures=folders["procedures"],
                           stations=folders["stations"], form_token=FORM, access_token=access,
                           allowed_hosts=("127.0.0.1", "localhost", "::1"))
    return TestClient(create_app(config), base_url=BASE, follow_redirects=False)


def test_remote_console_refuses_every_request_without_the_access_token(folders):
    c = client(folders, access=ACCESS)
    for path in ("/", "/runs", "/start", "/events/benches", "/static/console.js",
                 f"/runs/{folders['run'].name}"):
        assert c.get(path).status_code == 403, path
    assert c.get("/", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}).status_code == 403
    assert c.post(f"/runs/{folders['run'].name}/control/stop", json={"token": FORM}).status_code == 403
    assert c.get("/runs", headers={"Authorization": f"Bearer {ACCESS}"}).status_code == 200
    # ?token= once: a cookie (HttpOnly, SameSite=Strict) and the token gone from the address
    r = c.get(f"/runs?token={ACCESS}")
    assert r.status_code == 303 and "token" not in r.headers["location"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/runs").status_code == 200  # the client kept the cookie


def test_state_changes_need_post_with_the_form_token_even_on_loopback(folders):
    c = client(folders)
    url = f"/runs/{folders['run'].name}/control/stop"
    assert c.get(url).status_code == 405  # no change through GET
    assert c.post(url, json={}).status_code == 403
    assert c.post(url, json={"token": "nope"}).status_code == 403
    assert c.post(url, data={"token": "nope"}).status_code == 403
    assert c.post("/api/start", json={"procedure": "ok.yaml"}).status_code == 403
    assert c.post("/api/check", json={"procedure": "ok.yaml"}).status_code == 403
    # with the token the request reaches the handler: this run is not running
    r = c.post(url, headers={"X-Labctl-Token": FORM}, json={})
    assert r.status_code == 409 and "not running" in r.json()["error"]
    assert not (folders["run"] / "control").exists()  # nothing was queued


def test_cross_site_posts_and_foreign_hosts_are_refused(folders):
    c = client(folders)
    url = f"/runs/{folders['run'].name}/control/stop"
    r = c.post(url, headers={"X-Labctl-Token": FORM, "Origin": "http://evil.example"}, json={})
    assert r.status_code == 403
    # DNS rebinding: a page served as evil.example resolving to 127.0.0.1
    assert c.get("/", headers={"Host": "evil.example:8765"}).status_code == 400
    assert c.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200


@pytest.mark.parametrize("path", [
    "/runs/..%2F..%2Fetc%2Fpasswd",
    "/runs/../secret",
    "/runs/%2Fetc/plots",
    "/runs/{run}/analysis/../run.json",
    "/runs/{run}/analysis/..%2Frun.json",
    "/runs/{run}/analysis/%2Fetc%2Fpasswd",
    "/runs/{run}/analysis/fit/escape.json",  # a symlink leading out
    "/api/parameters?procedure=../secret/secret.yaml",
    "/api/parameters?procedure={outside}/secret.yaml",  # absolute
    "/api/parameters?procedure=link.yaml",  # symlink to a file outside
    "/api/parameters?procedure=linkdir/secret.yaml",  # through a symlinked folder
    "/qualification/..%2F{run}%2Frun.json",
    "/static/..%2F..%2Fcommand.py",
])
def test_paths_from_the_browser_never_leave_the_configured_folders(folders, path):
    c = client(folders)
    url = path.format(run=folders["run"].name, outside=folders["outside"])
    assert c.get(url).status_code == 404


def test_pages_cannot_be_framed_by_another_site(folders):
    c = client(folders)
    for path in ("/", "/runs", "/start", "/nope"):
        r = c.get(path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"


def test_files_inside_the_folders_are_served(folders):
    c = client(folders)
    assert c.get(f"/runs/{folders['run'].name}/analysis/fit/summary.json").status_code == 200
    assert c.get("/api/parameters?procedure=ok.yaml").status_code == 200
    assert list_files(folders["procedures"], (".yaml",)) == ["ok.yaml"]  # links out not offered


def test_inside_rules(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    assert inside(tmp_path, "a/f.txt") == (tmp_path / "a" / "f.txt").resolve()
    for bad in ("/etc/passwd", "../x", "a/../../x", "a\\f.txt", "", "~/x", "a/missing"):
        with pytest.raises(NotFound):
            inside(tmp_path, bad)


def test_token_file_is_created_0600_and_an_open_one_is_refused(tmp_path):
    from labctl.errors import LabctlError

    path = tmp_path / "cfg" / "token"
    old = os.umask(0)
    try:
        token, created = load_or_create_token(path)
    finally:
        os.umask(old)
    assert created and len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)  # printed once, then read back
    path.chmod(0o644)
    with pytest.raises(LabctlError, match="readable by other users"):
        load_or_create_token(path)


def test_non_loopback_host_needs_allow_remote(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "labctl.cli", "console", "--host", "0.0.0.0",
                        "--results", str(tmp_path)], cwd=repo, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "--allow-remote" in r.stderr and "Traceback" not in r.stderr


def test_remote_console_prints_a_new_token_once_and_keeps_it_0600(tmp_path, monkeypatch):
    """`--host 0.0.0.0 --allow-remote` without listening beyond loopback: the socket is bound
    to 127.0.0.1 here and the server returns at once; what is printed and stored is real."""
    import socket as socket_module

    from click.testing import CliRunner

    import labctl.console.command as command

    bound = []

    def loopback_listen(host, port):
        bound.append(host)
        s = socket_module.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return s

    monkeypatch.setattr(command, "_listen", loopback_listen)
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: None)
    token_file = tmp_path / "token"
    args = ["--host", "0.0.0.0", "--allow-remote", "--token-file", str(token_file),
            "--results", str(tmp_path / "results"), "--port", "0"]
    first = CliRunner().invoke(command.console_cmd, args)
    assert first.exit_code == 0, first.output
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"?token={token}" in first.output and bound == ["0.0.0.0"]
    again = CliRunner().invoke(command.console_cmd, args)
    assert again.exit_code == 0 and token not in again.output  # printed once only
    assert str(token_file) in again.output
