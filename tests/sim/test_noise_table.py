"""The simulator's noise table, and the copy the `labctl` command keeps in the user's cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from labctl.sim import noise_table
from tests.support import REPO, labctl_cmd


def _seeded() -> np.ndarray:
    """The table by its definition: the first 2^20 float32 standard normal draws of
    numpy's PCG64 generator from the simulator's seed."""
    return np.random.Generator(np.random.PCG64(0x1ABC71)).standard_normal(1 << 20,
                                                                          dtype=np.float32)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as for a user's command
    monkeypatch.setattr(noise_table, "_table", None)
    monkeypatch.setattr(noise_table, "_builder", None)
    return tmp_path / "xdg" / "labctl" / "sim" / noise_table.cache_name()


def test_the_kept_copy_reads_back_as_the_seeded_draws(cache):
    assert noise_table.METHOD == "pcg64-standard-normal"  # what _seeded() makes
    noise_table.write_kept(noise_table.generate())
    assert cache.is_file() and cache.stat().st_mode & 0o777 == 0o600
    assert np.__version__ in cache.name  # another numpy may draw other numbers
    kept = noise_table.read_kept()
    assert kept is not None and kept.dtype == np.float32
    assert np.array_equal(kept, _seeded())


@pytest.mark.parametrize("damage", ["flip", "cut", "longer", "magic"])
def test_a_damaged_copy_is_not_used(cache, damage):
    noise_table.write_kept(noise_table.generate())
    data = bytearray(cache.read_bytes())
    if damage == "flip":
        data[8 + 4 * 12345] ^= 0x40
    elif damage == "cut":
        del data[-4:]
    elif damage == "longer":
        data += b"\0"
    else:
        data[0:4] = b"XXXX"
    cache.write_bytes(bytes(data))
    assert noise_table.read_kept() is None


def test_a_copy_others_may_write_or_a_link_is_not_used(cache, tmp_path):
    noise_table.write_kept(noise_table.generate())
    os.chmod(cache, 0o666)
    assert noise_table.read_kept() is None
    os.chmod(cache, 0o600)
    assert noise_table.read_kept() is not None
    elsewhere = tmp_path / "elsewhere.bin"
    cache.rename(elsewhere)
    cache.symlink_to(elsewhere)
    assert noise_table.read_kept() is None


def test_nothing_is_written_under_dont_write_bytecode(cache, monkeypatch):
    old = cache.with_name("normal-table-1abc71-1048576-f32le-numpy-2.4.6.bin")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    noise_table.write_kept(noise_table.generate())
    assert not cache.exists() and old.exists()  # nor is anything removed


def _prefetched(keep: bool) -> np.ndarray:
    noise_table._table = noise_table._builder = None
    noise_table.prefetch(keep)
    return noise_table.table()


def _doctored() -> np.ndarray:
    """A copy that passes every check (whole, CRC, its start) but is not the table: after
    its first 5,000 draws, zeros. Runs that take noise from it measure differently."""
    values = _seeded()
    values[5000:] = 0.0
    return values


_NOT_STANDARD = {
    "zeros": lambda: np.zeros(noise_table.SIZE, dtype=np.float32),
    "spread": lambda: _seeded() * np.float32(2.0),  # draws of another spread
    "mean": lambda: _seeded() + np.float32(0.5),  # of another mean
    "sorted": lambda: np.sort(_seeded()),  # the right values, the start all lower tail
}


@pytest.mark.parametrize("kind", sorted(_NOT_STANDARD))
def test_a_whole_copy_of_values_that_are_not_standard_draws_is_not_used(cache, kind):
    noise_table.write_kept(_NOT_STANDARD[kind]())  # CRC and all
    assert noise_table.read_kept() is None


def test_only_the_start_of_a_whole_copy_is_looked_at(cache):
    noise_table.write_kept(_doctored())
    assert np.array_equal(noise_table.read_kept(), _doctored())


def test_prefetch_keeps_the_table_only_when_asked_and_then_reads_it_back(cache):
    assert np.array_equal(_prefetched(keep=False), _seeded())
    assert not cache.exists()
    assert np.array_equal(_prefetched(keep=True), _seeded())
    assert cache.is_file()
    # What is read back is the kept file: a different (valid) copy shows through.
    noise_table.write_kept(_doctored())
    assert np.array_equal(_prefetched(keep=True), _doctored())
    assert np.array_equal(_prefetched(keep=False), _seeded())  # a caller's own is made
    with pytest.raises(ValueError):  # shared by every channel: nobody may change it
        noise_table.table()[0] = 1.0


# An exception escaping the thread would only be a warning: made an error here.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failure_in_the_prefetch_thread_leaves_the_table_to_be_made(cache, monkeypatch):
    def broken() -> None:
        raise MemoryError("no room")

    monkeypatch.setattr(noise_table, "read_kept", broken)
    noise_table.prefetch(keep=True)
    noise_table._builder.join()
    assert noise_table._table is None  # the thread ended quietly, with nothing
    assert np.array_equal(noise_table.table(), _seeded())  # made where it is needed


def test_a_hung_cache_folder_does_not_stop_the_run(cache, monkeypatch):
    release = threading.Event()

    def hung() -> None:  # a cache on a network home that does not answer
        release.wait(30)

    monkeypatch.setattr(noise_table, "read_kept", hung)
    monkeypatch.setattr(noise_table, "_WAIT_S", 0.2)
    noise_table.prefetch(keep=True)
    started = time.monotonic()
    try:
        assert np.array_equal(noise_table.table(), _seeded())  # made here instead
        assert time.monotonic() - started < 10
    finally:
        release.set()
        noise_table._builder.join()
    assert np.array_equal(noise_table.table(), _seeded())  # the first table stays


def _run_command(tmp_path: Path, proc: Path, results: str):
    return labctl_cmd("run", str(proc), "--station", str(REPO / "instruments" / "sim.yaml"),
                      "--results", str(tmp_path / results), "--no-progress",
                      env={"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONDONTWRITEBYTECODE": ""})


def test_labctl_run_keeps_the_table_and_measures_with_the_kept_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    kept = tmp_path / "xdg" / "labctl" / "sim" / noise_table.cache_name()

    def run(k: int) -> dict[str, np.ndarray]:
        out = _run_command(tmp_path, REPO / "procedures" / "quickstart.yaml", f"results{k}")
        assert out.returncode == 0, out.stderr[-2000:]
        (table,) = (tmp_path / f"results{k}").glob("*/timeseries.parquet")
        return {name: pq.read_table(table).column(name).to_numpy()
                for name in ("voltage_v", "current_a")}

    made = run(0)  # made the table, and kept it
    assert np.array_equal(noise_table.read_kept(), _seeded())
    again = run(1)  # read it: the same readings
    for name in made:
        assert np.array_equal(made[name], again[name])
    # The command really takes the kept copy: noise from a doctored one differs, and the
    # command leaves a valid copy as it is.
    noise_table.write_kept(_doctored())
    doctored = run(2)
    assert not np.array_equal(made["voltage_v"], doctored["voltage_v"])
    assert 0 < np.abs(made["voltage_v"] - doctored["voltage_v"]).max() < 0.005  # sigma 0.2 mV
    assert np.array_equal(noise_table.read_kept(), _doctored())
    # A damaged copy is not used: the run measures as the first, and keeps a good copy.
    data = bytearray(kept.read_bytes())
    data[8 + 4 * 5000] ^= 0x40
    kept.write_bytes(bytes(data))
    repaired = run(3)
    for name in made:
        assert np.array_equal(made[name], repaired[name])
    assert np.array_equal(noise_table.read_kept(), _seeded())


def test_a_process_that_ends_at_once_still_keeps_a_whole_copy(tmp_path):
    # The `labctl` command's own end (process_exit.leave_now: exit handlers, then os._exit,
    # which does not wait for the thread making and writing the copy), right after the
    # table was set going. What the thread imports is imported first, so that only the
    # copy is written even where bytecode must not be.
    code = ("import os, sys\n"
            "import labctl.dataclass_code_cache, labctl.private_cache, zlib_ng.zlib_ng\n"
            "import labctl.process_exit as process_exit\n"
            "from labctl.sim import noise_table\n"
            "sys.dont_write_bytecode = False\n"
            "process_exit.labctl_is_the_program = lambda: True\n"
            "noise_table.prefetch(keep=True)\n"
            "process_exit.leave_now(SystemExit(0))\n"
            "sys.exit(3)\n")  # leave_now returned: it did not end the process
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert done.returncode == 0
    folder = tmp_path / "xdg" / "labctl" / "sim"
    assert sorted(p.name for p in folder.iterdir()) == [noise_table.cache_name()]  # no .tmp
    kept = folder / noise_table.cache_name()
    assert kept.stat().st_size == 8 + 4 * noise_table.SIZE
    assert kept.read_bytes()[8:] == _seeded().tobytes()


def test_keeping_the_table_removes_copies_under_the_old_name_only(cache):
    old = cache.with_name("normal-table-1abc71-1048576-f32le-numpy-2.4.6.bin")  # before METHOD
    other_numpy = cache.with_name(cache.name.replace(np.__version__, "9.9.9"))
    unrelated = cache.with_name("notes.txt")
    old.parent.mkdir(parents=True, exist_ok=True)
    for path in (old, other_numpy, unrelated):
        path.write_bytes(b"x" * 100)
    noise_table.write_kept(_seeded())
    assert cache.is_file() and not old.exists()
    assert other_numpy.exists() and unrelated.exists()  # another environment's, not ours
