"""Vendor sample files live in ../shared/vendor-data/ beside the project (never copied in)."""

from __future__ import annotations

from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / ".." / "shared" / "vendor-data"


@pytest.fixture(scope="session")
def vendor() -> Path:
    if not VENDOR.is_dir():
        pytest.fail(f"vendor sample files missing: {VENDOR}")
    return VENDOR.resolve()


@pytest.fixture(scope="session")
def imported(vendor, tmp_path_factory):
    """Each vendor sample imported once per session: name -> run directory."""
    from labctl.importers.api import import_file

    root = tmp_path_factory.mktemp("imported")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = import_file(vendor / name, root).path
        return cache[name]

    return get
