"""`labctl.process_exit.leave_now`: the quick exit keeps what a normal exit guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from labctl.process_exit import exit_code

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from labctl.cli import console  # noqa: F401 - as the console script does
    from labctl.process_exit import leave_now

    marker = sys.argv[1]
    atexit.register(lambda: open(marker, "w").write("handler ran"))
    sys.stdout.write("x" * 200_000)  # more than a pipe's buffer: must be flushed
    sys.stdout.write("END")
    sys.stdout.flush()
    import ctypes
    ctypes.CDLL(None).printf(b"C")  # a compiled library's print, in libc's buffer
    if sys.argv[2] == "thread":
        def late():
            time.sleep(0.3)
            sys.stdout.write("THREAD")
        threading.Thread(target=late).start()
    stop = SystemExit(int(sys.argv[3]))
    leave_now(stop)
    sys.stdout.write("NORMAL")  # reached only when leave_now declined
    raise stop
""")


def _run(tmp_path, mode: str, code: int) -> tuple[subprocess.CompletedProcess, str]:
    marker = tmp_path / "marker.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # C buffers too
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(marker), mode, str(code)],
                         capture_output=True, text=True, timeout=60, env=env)
    return out, marker.read_text() if marker.exists() else ""


@pytest.mark.parametrize("code", [0, 2, 130])
def test_quick_exit_keeps_status_output_and_handlers(tmp_path, code):
    out, marker = _run(tmp_path, "plain", code)
    assert out.returncode == code
    # Flushed (Python's and C's buffers), and nothing after leave_now ran.
    assert out.stdout == "x" * 200_000 + "ENDC"
    assert marker == "handler ran"
    assert out.stderr == ""


def test_a_running_thread_gets_the_normal_exit(tmp_path):
    out, marker = _run(tmp_path, "thread", 3)
    assert out.returncode == 3
    # The interpreter waited for the thread, as it would without leave_now.
    assert out.stdout.endswith("ENDCNORMALTHREAD")
    assert marker == "handler ran"


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), (True, None),
                                              ("failed: reason", None), (300, None)])
def test_exit_code_is_the_interpreter_s_or_none(code, status):
    assert exit_code(SystemExit(code)) == status


def test_labctl_command_output_and_status_through_the_quick_exit(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: [\n")
    out = subprocess.run([sys.executable, "-m", "labctl.cli", "validate", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "bad.yaml" in out.stderr + out.stdout
    version = subprocess.run([sys.executable, "-m", "labctl.cli", "--version"],
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and "labctl" in version.stdout


# A sitecustomize whose object is freed by the interpreter's teardown: its marker file
# appears after a normal exit and not after the quick one.
_TEARDOWN_PROBE = """
import atexit, os
class _Probe:
    def __del__(self, _open=open, _path=os.environ["LABCTL_TEST_TEARDOWN_MARK"]):
        with _open(_path, "w") as f:  # builtins may be gone by then: bound here
            f.write("teardown ran")
probe = _Probe()
"""

# What pip writes for the `labctl` console script.
_CONSOLE_SCRIPT = """
import re, sys
from labctl.cli import console
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(console())
"""


def _probed(tmp_path, args: list[str]) -> tuple[subprocess.CompletedProcess, bool]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_TEARDOWN_PROBE)
    mark = tmp_path / "teardown.txt"
    mark.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()]),
           "LABCTL_TEST_TEARDOWN_MARK": str(mark)}
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                         env=env)
    return out, mark.exists()


def test_the_labctl_command_skips_the_teardown(tmp_path):
    script = tmp_path / "labctl"
    script.write_text(_CONSOLE_SCRIPT)
    for args in (["-m", "labctl.cli", "--version"], [str(script), "--version"]):
        out, teardown = _probed(tmp_path, args)
        assert out.returncode == 0 and "version" in out.stdout, out.stderr
        assert not teardown, args


def test_profilers_and_embedding_programs_get_the_normal_exit(tmp_path):
    prof = tmp_path / "out.prof"
    out, teardown = _probed(tmp_path, ["-m", "cProfile", "-o", str(prof), "-m", "labctl.cli",
                                       "--version"])
    assert out.returncode == 0 and teardown
    assert prof.stat().st_size > 0  # cProfile wrote its results after labctl returned
    embed = "import labctl.cli\ntry:\n    labctl.cli.console()\nexcept SystemExit:\n    print('after')"
    out, teardown = _probed(tmp_path, ["-c", embed, "--version"])
    assert out.stdout.rstrip().endswith("after") and teardown


EMBED_RUNS = textwrap.dedent("""
    import os, sys, time
    import labctl.cli
    results = sys.argv[1]
    for _ in range(2):
        sys.argv = ["labctl", "run", "procedures/quickstart.yaml", "--results", results,
                    "--no-progress", "--json"]
        try:
            labctl.cli.console()
        except SystemExit as stop:
            assert not stop.code, stop.code
    me, left = os.getpid(), []
    for _ in range(100):  # the table writers end once their pipe is closed: reaped by then
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                left.append(fields[0])
        if not left:
            break
        time.sleep(0.05)
    print("CHILDREN", " ".join(left) or "none")
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc (Linux)")
def test_a_program_that_runs_the_command_twice_keeps_no_zombie_table_writer(tmp_path):
    """`labctl run` forks a table writer; where the process goes on after the command (a
    program embedding it) the writer is reaped, not left a zombie."""
    out = subprocess.run([sys.executable, "-c", EMBED_RUNS, str(tmp_path / "results")],
                         capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "CHILDREN none", out.stdout[-500:]
