"""The dataclass code cache (labctl/dataclass_code_cache.py): the same classes, faster."""

from __future__ import annotations

import builtins
import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from labctl.dataclass_code_cache import CodeCache

SOURCE = "def __create_fn__(_return_type):\n def f(x:int=3)->_return_type:\n  return x * 2\n return f"
MODULE = "labctl_test_module"

# exec as `dataclasses` calls it: from code compiled without `from __future__ import
# annotations` (this test module has it, and exec passes a caller's flags on).
_plain_exec = eval(compile("lambda s, g, l: exec(s, g, l)", "<ref>", "eval", dont_inherit=True))


def _make(exec_fn, module: str = MODULE) -> object:
    ns: dict = {}
    exec_fn(SOURCE, {"__builtins__": builtins, "__name__": module}, ns)
    return ns["__create_fn__"](_return_type=None)


@pytest.fixture
def writable(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def _file(folder) -> os.PathLike:
    return folder / f"{MODULE}.marshal"


def test_cached_code_is_what_exec_compiles(tmp_path):
    cache = CodeCache(tmp_path / "codes")
    ours, theirs = _make(cache.exec), _make(_plain_exec)
    assert ours.__code__.co_code == theirs.__code__.co_code
    assert ours.__code__.co_consts == theirs.__code__.co_consts
    assert ours.__code__.co_filename == theirs.__code__.co_filename == "<string>"
    # No __future__ flag of the cache's own module leaks in: annotations are objects.
    assert ours.__annotations__ == theirs.__annotations__ == {"x": int, "return": None}
    assert ours(5) == 10


def test_saved_codes_are_used_by_the_next_process_and_not_rewritten(tmp_path, writable):
    folder = tmp_path / "codes"
    first = CodeCache(folder)
    _make(first.exec)
    first.save()
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert oct(_file(folder).stat().st_mode & 0o777) == oct(0o600)  # whatever the umask
    stamp = _file(folder).stat().st_mtime_ns
    second = CodeCache(folder)
    assert _make(second.exec)(4) == 8
    assert second._new == set()  # found, not compiled
    second.save()
    assert _file(folder).stat().st_mtime_ns == stamp  # nothing new: not written


def test_a_module_s_file_keeps_only_what_was_used(tmp_path, writable):
    folder = tmp_path / "codes"
    first = CodeCache(folder)
    first.exec("x = 1", {"__name__": MODULE}, {})  # a class the module no longer has
    _make(first.exec)
    first.save()
    second = CodeCache(folder)
    _make(second.exec)  # found
    second.exec("y = 2", {"__name__": MODULE}, {})  # new: the module's file is rewritten
    second.save()
    assert set(CodeCache(folder)._read(MODULE)) == {SOURCE, "y = 2"}


def test_a_command_making_no_dataclass_reads_nothing(tmp_path, writable):
    cache = CodeCache(tmp_path / "codes")
    cache.save()
    assert not (tmp_path / "codes").exists()


def test_under_umask_002_the_cache_still_works(tmp_path, writable):
    old = os.umask(0o002)
    try:
        first = CodeCache(tmp_path / "codes")
        _make(first.exec)
        first.save()
    finally:
        os.umask(old)
    assert SOURCE in CodeCache(tmp_path / "codes")._read(MODULE)


def test_nothing_is_written_where_bytecode_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE, -B
    cache = CodeCache(tmp_path / "codes")
    _make(cache.exec)
    cache.save()
    assert not (tmp_path / "codes").exists()


def test_unsafe_or_damaged_files_are_ignored(tmp_path, writable):
    folder = tmp_path / "codes"
    first = CodeCache(folder)
    _make(first.exec)
    first.save()
    os.chmod(_file(folder), 0o666)  # writable by others: its code could be anyone's
    assert CodeCache(folder)._read(MODULE) == {}
    os.chmod(_file(folder), 0o600)
    assert SOURCE in CodeCache(folder)._read(MODULE)
    os.chmod(folder, 0o777)  # a folder others can write to: nothing in it is used
    assert CodeCache(folder)._read(MODULE) == {}
    os.chmod(folder, 0o700)
    target = tmp_path / "elsewhere.marshal"
    os.replace(_file(folder), target)
    os.symlink(target, _file(folder))  # a link is not followed
    assert CodeCache(folder)._read(MODULE) == {}
    os.unlink(_file(folder))
    _file(folder).write_bytes(b"\x00garbage")
    os.chmod(_file(folder), 0o600)
    cache = CodeCache(folder)
    assert cache._read(MODULE) == {}
    assert _make(cache.exec)(1) == 2  # compiles again


def test_a_linked_cache_folder_is_not_used(tmp_path, writable):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "codes")
    cache = CodeCache(tmp_path / "codes")
    _make(cache.exec)
    cache.save()
    assert list(real.iterdir()) == []


def test_dataclasses_made_through_the_cache_behave_the_same(tmp_path):
    script = textwrap.dedent("""
        import dataclasses, json, sys
        from labctl.dataclass_code_cache import install
        if sys.argv[1] == "cached":
            cache = install()
            assert cache is not None
        @dataclasses.dataclass(frozen=True)
        class P:
            a: float
            b: int = 2
            c: tuple = ()
        @dataclasses.dataclass(order=True)
        class Q:
            x: int
            ys: list = dataclasses.field(default_factory=list)
        p = P(1.5, c=(1,))
        try:
            p.a = 3
            frozen = False
        except dataclasses.FrozenInstanceError:
            frozen = True
        q = Q(1); q.ys.append(2)
        out = [repr(p), p == P(1.5, 2, (1,)), hash(p) == hash(P(1.5, 2, (1,))), frozen,
               repr(q), Q(1) < Q(2), Q(3).ys is not Q(3).ys, str(P.__init__.__annotations__)]
        if sys.argv[1] == "cached":
            cache.save()
        print(json.dumps(out))
    """)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run(mode: str) -> str:
        out = subprocess.run([sys.executable, "-c", script, mode], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    plain = run("plain")
    assert run("cached") == plain  # compiled and saved
    (folder,) = (tmp_path / "labctl" / "dataclass-code").iterdir()
    assert [p.name for p in folder.iterdir()] == ["__main__.marshal"]
    assert run("cached") == plain  # read back from the file


def test_the_labctl_command_fills_the_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, "-m", "labctl.cli", "validate",
                          "procedures/quickstart.yaml"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (folder,) = (tmp_path / "labctl" / "dataclass-code").iterdir()
    names = {p.name for p in folder.iterdir()}
    assert {"labctl.capabilities.steps.marshal", "labctl.cells.spec.marshal"} <= names
    assert not dataclasses.__dict__.get("exec")  # this (test) process is untouched
