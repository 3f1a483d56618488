"""Names a package offers, loaded from their modules on first use (PEP 562).

A package whose `__init__` imports its own modules is an import cycle: two threads that
first import it through different modules (channels of one `labctl run`, the console's
request threads, a Dask worker's tasks) can each wait for a module the other is
importing, and Python then hands one of them a half-initialised module. Packages on the
run path offer their names through `lazy_names` instead (tests/test_import_safety.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`; `where` maps each name to its module."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # from now on a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
