"""The parse cache of `labctl` processes (labctl/yaml_cache.py): a cached text gives what
parsing it gives, a changed text or parser is parsed again, and nothing but the user's
own plain data is ever taken from the cache folder."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import yaml_cache, yamlio
from labctl.yaml_parse import parse

REPO = Path(__file__).resolve().parent.parent
YAML_FILES = sorted([*REPO.glob("procedures/**/*.yaml"), *REPO.glob("fixtures/cells/*.yaml"),
                     *REPO.glob("instruments/*.yaml")])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache in a folder of this test, in use by yamlio (as in a `labctl` process)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    made = yaml_cache.ParseCache(tmp_path / "yaml")
    monkeypatch.setattr(yaml_cache, "ACTIVE", made)
    return made


def _reopened(cache: yaml_cache.ParseCache, monkeypatch) -> yaml_cache.ParseCache:
    """Save, then a new cache reading the file, as the next process would."""
    cache.save()
    again = yaml_cache.ParseCache(cache.folder)
    monkeypatch.setattr(yaml_cache, "ACTIVE", again)
    return again


def test_every_shipped_file_reads_back_as_parsing_gives_it(cache, monkeypatch):
    assert len(YAML_FILES) > 10
    texts = [p.read_text(encoding="utf-8") for p in YAML_FILES]
    for text in texts:
        yamlio.loads(text, "f")
    again = _reopened(cache, monkeypatch)
    for path, text in zip(YAML_FILES, texts, strict=True):
        hit = again.get(text)
        assert hit is not None, path
        fresh = parse(text, str(path))
        assert hit[0] == fresh.data and repr(hit[0]) == repr(fresh.data), path
        assert hit[1] == fresh.marks, path
        doc = yamlio.loads(text, str(path))  # through yamlio: the file name is the caller's
        assert doc.file == str(path) and doc.text == text and doc.marks == fresh.marks


def test_callers_get_a_copy_they_may_change(cache, monkeypatch):
    text = "a: [1, 2]\nb: {c: x}\n"
    yamlio.loads(text)
    _reopened(cache, monkeypatch)
    first = yamlio.loads(text)
    first.data["a"].append(3)
    first.marks.clear()
    second = yamlio.loads(text)
    assert second.data == {"a": [1, 2], "b": {"c": "x"}}
    assert second.marks[("b", "c")] == (2, 8)


def test_a_changed_text_is_parsed_again(cache, monkeypatch):
    yamlio.loads("limit: 4.2\n")
    _reopened(cache, monkeypatch)
    assert yamlio.loads("limit: 4.1\n").data == {"limit": 4.1}


def test_another_parser_version_starts_afresh(cache, monkeypatch):
    text = "x: 1\n"
    yamlio.loads(text)
    cache.save()
    monkeypatch.setattr(yaml_cache, "_parser_stamp", lambda: (1, 2, 3))
    assert yaml_cache.ParseCache(cache.folder).get(text) is None


def test_a_cache_file_others_may_write_is_not_read(cache, monkeypatch):
    text = "x: 1\n"
    yamlio.loads(text)
    cache.save()
    os.chmod(cache.folder / yaml_cache.FILE_NAME, 0o620)
    assert yaml_cache.ParseCache(cache.folder).get(text) is None


@pytest.mark.parametrize("value", [{1, 2}, compile("1", "f", "eval"), {3: "a"}, (1, 2)])
def test_anything_but_plain_data_in_the_file_is_refused(cache, monkeypatch, value):
    text = "x: 1\n"
    yamlio.loads(text)
    cache.save()
    path = cache.folder / yaml_cache.FILE_NAME
    stamp, entries = marshal.loads(path.read_bytes())
    ((key, _),) = entries.items()
    path.write_bytes(marshal.dumps((stamp, {key: marshal.dumps(({"x": value}, {(): (1, 1)}))})))
    again = _reopened(yaml_cache.ParseCache(cache.folder), monkeypatch)
    assert again.get(text) is None
    assert yamlio.loads(text).data == {"x": 1}


def test_nothing_is_written_under_pythondontwritebytecode(cache, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yamlio.loads("x: 1\n")
    cache.save()
    assert not (cache.folder / yaml_cache.FILE_NAME).exists()


PROBE = """\
import json, sys
from labctl import yaml_cache
from labctl.cli import main
cache = yaml_cache.install()
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
cache.save()
print(json.dumps({"yaml": "yaml" in sys.modules}), file=sys.stderr)
"""


def test_a_second_validate_needs_no_yaml_parser(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    outs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", PROBE, "validate", "procedures/cycling.yaml",
                              "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append((json.loads(out.stdout), json.loads(out.stderr.strip().splitlines()[-1])))
    assert outs[0][1]["yaml"] is True  # the first one parsed
    assert outs[1][1]["yaml"] is False  # the second found all three files in the cache
    assert outs[0][0] == outs[1][0]
