"""CAN bus capability (BMS communication)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CanBus(Protocol):
    def identify(self) -> dict[str, str]: ...

    def send(self, arbitration_id: int, data: bytes, is_extended_id: bool = False) -> None: ...

    def close(self) -> None: ...
