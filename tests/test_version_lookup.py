"""labctl.__version__ read from the dist-info on sys.path equals importlib.metadata's answer."""

from __future__ import annotations

import importlib.metadata
import sys

import labctl
from tests.test_plugin_discovery import standard_finders_only


def test_same_as_importlib_metadata_here(monkeypatch):
    standard_finders_only(monkeypatch)
    assert labctl._version_on_path() == importlib.metadata.version("labctl")


def test_the_first_labctl_on_the_path_wins(tmp_path, monkeypatch):
    standard_finders_only(monkeypatch)
    info = tmp_path / "labctl-9.8.7.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labctl\nVersion: 9.8.7\n\nText\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert labctl._version_on_path() == "9.8.7"
    assert importlib.metadata.version("labctl") == "9.8.7"  # what it stands in for


def test_odd_headers_defer_to_importlib_metadata():
    assert labctl._version_header("Name: labctl\nVersion: 1.2\n") == "1.2"
    assert labctl._version_header("Name: labctl\n\nVersion: 1.2\n") is None  # body, not header
    assert labctl._version_header("Version: 1.2\n  folded\n") is None


# Another finder of distributions: tests/test_plugin_discovery.py checks both shortcuts.
