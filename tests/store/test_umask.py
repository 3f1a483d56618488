"""The umask new result files get, read without changing it while channels run."""

from __future__ import annotations

import builtins
import os

import pytest

from labctl.store import atomic


def test_linux_reads_the_umask_from_proc_without_setting_it(monkeypatch):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc on this platform")
    old = os.umask(0o027)
    os.umask(old)

    def refuse(*args):
        raise AssertionError("os.umask changes the mask for every thread")

    try:
        os.umask(0o027)
        monkeypatch.setattr(atomic.os, "umask", refuse)
        assert atomic.current_umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_without_proc_the_umask_read_at_import_is_used(monkeypatch):
    # macOS/BSD: reading means setting and restoring it, which other channels' threads
    # would see; so it is read once at import, and a run's threads only look it up.
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    def refuse(*args):
        raise AssertionError("os.umask changes the mask for every thread")

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(atomic, "_UMASK_AT_IMPORT", 0o077)
    monkeypatch.setattr(atomic.os, "umask", refuse)
    assert atomic.current_umask() == 0o077
