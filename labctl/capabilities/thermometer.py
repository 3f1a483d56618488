"""Thermometer / temperature logger capability."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Thermometer(Protocol):
    channels: tuple[str, ...]

    def identify(self) -> dict[str, str]: ...

    def read_temperatures_c(self) -> dict[str, float]:
        """One reading per channel, degrees Celsius."""
        ...

    def close(self) -> None: ...
