"""The dataclass code cache (labctl/dataclass_code_cache.py): the same classes, faster."""

from __future__ import annotations

import builtins
import dataclasses
import marshal
import os
import subprocess
import sys
import textwrap

from labctl.dataclass_code_cache import CodeCache

SOURCE = "def __create_fn__(_return_type):\n def f(x:int=3)->_return_type:\n  return x * 2\n return f"


# exec as `dataclasses` calls it: from code compiled without `from __future__ import
# annotations` (this test module has it, and exec passes a caller's flags on).
_plain_exec = eval(compile("lambda s, g, l: exec(s, g, l)", "<ref>", "eval", dont_inherit=True))


def _make(exec_fn) -> object:
    ns: dict = {}
    exec_fn(SOURCE, {"__builtins__": builtins}, ns)
    return ns["__create_fn__"](_return_type=None)


def test_cached_code_is_what_exec_compiles(tmp_path):
    cache = CodeCache(tmp_path / "codes.marshal")
    ours, theirs = _make(cache.exec), _make(_plain_exec)
    assert ours.__code__.co_code == theirs.__code__.co_code
    assert ours.__code__.co_consts == theirs.__code__.co_consts
    assert ours.__code__.co_filename == theirs.__code__.co_filename == "<string>"
    # No __future__ flag of the cache's own module leaks in: annotations are objects.
    assert ours.__annotations__ == theirs.__annotations__ == {"x": int, "return": None}
    assert ours(5) == 10 and cache.added == 1


def _saved(tmp_path, monkeypatch):
    """A cache file holding SOURCE's code, as a first process leaves it."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "codes.marshal"
    first = CodeCache(path)
    _make(first.exec)
    first.save()
    assert path.exists()
    return path


def test_saved_codes_are_used_by_the_next_process_and_not_rewritten(tmp_path, monkeypatch):
    path = _saved(tmp_path, monkeypatch)
    stamp = path.stat().st_mtime_ns
    second = CodeCache(path)
    assert SOURCE in second.codes
    assert _make(second.exec)(4) == 8
    assert second.added == 0
    second.save()
    assert path.stat().st_mtime_ns == stamp  # nothing new: not written


def test_nothing_is_written_where_bytecode_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE, -B
    cache = CodeCache(tmp_path / "codes.marshal")
    _make(cache.exec)
    cache.save()
    assert not (tmp_path / "codes.marshal").exists()


def test_unsafe_or_damaged_files_are_ignored(tmp_path, monkeypatch):
    path = _saved(tmp_path, monkeypatch)
    os.chmod(path, 0o666)  # writable by others: its code could be anyone's
    assert CodeCache(path).codes == {}
    os.chmod(path, 0o644)
    assert SOURCE in CodeCache(path).codes
    codes = marshal.loads(path.read_bytes())
    codes["\0bytecode"] = b"another interpreter"
    path.write_bytes(marshal.dumps(codes))
    assert CodeCache(path).codes == {}  # code for other bytecode is never run
    path.write_bytes(b"\x00garbage")
    cache = CodeCache(path)
    assert cache.codes == {}
    assert _make(cache.exec)(1) == 2  # compiles again


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
    files = list((tmp_path / "labctl").iterdir())
    assert len(files) == 1
    assert run("cached") == plain  # read back from the file


def test_the_labctl_command_fills_the_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, "-m", "labctl.cli", "validate",
                          "procedures/quickstart.yaml"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "labctl").iterdir()
    assert len(CodeCache(path).codes) > 50  # the run path's dataclasses
    assert not dataclasses.__dict__.get("exec")  # this (test) process is untouched
