"""The cheap look for `labctl` entry points agrees with importlib.metadata (what pluggy uses)."""

from __future__ import annotations

import importlib.metadata
import sys
from importlib.machinery import PathFinder

import pytest

from labctl.plugins import _entry_points_may_declare


def standard_finders_only(monkeypatch) -> None:
    """The interpreter's own finder of distributions only, as in a fresh `labctl` process.

    Importing dask imports the importlib_metadata backport, which adds its own finder and
    takes the standard one's `find_distributions` away; the look then always answers True
    or None (see the last test) and there would be nothing to compare."""
    monkeypatch.setattr(PathFinder, "find_distributions", staticmethod(
        lambda *a, **k: importlib.metadata.MetadataPathFinder.find_distributions(*a, **k)),
        raising=False)
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if f is PathFinder
                                           or not hasattr(f, "find_distributions")])


def _dist(folder, name: str, entry_points: str | None) -> None:
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


@pytest.mark.parametrize("text", [
    None,
    "[console_scripts]\nlabctl-thing = thing:main\n",  # mentions labctl, not the group
    "[pytest11]\nlabctl = labctl.pytest_plugin\n",
    "[labctl]\nfake = fake_plugin\n",
    "  [labctl]  \nfake = fake_plugin\n",  # importlib.metadata strips the line
    "[labctl.extra]\nfake = fake_plugin\n",
])
def test_agrees_with_importlib_metadata(tmp_path, monkeypatch, text):
    _dist(tmp_path, "fakepkg", text)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    standard_finders_only(monkeypatch)
    truth = any(ep.group == "labctl" for ep in importlib.metadata.entry_points(group="labctl"))
    assert _entry_points_may_declare("labctl") == truth
    # Only ever a superset of the truth (a False is never wrong), here exactly it.
    assert truth == (text is not None and "[labctl]" in text)


def test_a_zip_on_the_path_defers_to_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip archive
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    assert _entry_points_may_declare("labctl") is True


def test_another_finder_of_distributions_defers_to_importlib_metadata(monkeypatch):
    """Both shortcuts (plugin discovery, labctl's version) step aside for it."""
    import labctl

    class Finder:
        @staticmethod
        def find_distributions(*args, **kwargs):
            return iter(())

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert _entry_points_may_declare("labctl") is True
    assert labctl._version_on_path() is None
