"""Built-in ageing plugin: registers its drivers, step types and analyses through the hooks."""

from __future__ import annotations
