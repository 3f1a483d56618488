"""CAN bus and BMS capabilities (what a validation step may ask of the `bms` role).

A `CanBus` is labctl's end of a bus (python-can underneath, any interface). A
`BmsUnderTest` is a BMS reached over CAN with a DBC signal map; on a simulated bench
(or a HIL bench with a cell emulator) it also offers a `stimulus` to drive the pack.
Time passes through `run_for`, which returns the frames that arrived meanwhile, so
the same step code runs in virtual time and on a real bus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class CanBus(Protocol):
    def identify(self) -> dict[str, str]: ...

    def send(self, arbitration_id: int, data: bytes, is_extended_id: bool = False) -> None: ...

    def send_periodic(self, arbitration_id: int, make_data: Callable[[], bytes], period_s: float,
                      is_extended_id: bool = False) -> None: ...

    def receive(self, timeout_s: float = 0.0) -> list[Any]: ...

    def set_filters(self, filters: list[dict] | None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PackStimulus(Protocol):
    """What a HIL bench applies to the pack the BMS watches (cell numbers are 1-based)."""

    def set_current(self, current_a: float) -> None: ...

    def force_cell_voltage(self, cell: int, voltage_v: float | None) -> None: ...

    def force_temperature(self, cell: int, temperature_c: float | None) -> None: ...

    def set_pressure(self, pressure_mpa: float) -> None: ...

    def set_soc(self, soc: float, cell: int | None = None) -> None: ...

    def offset_cell_voltage(self, cell: int, delta_v: float) -> None: ...

    def inject(self, fault: str, **options: Any) -> None: ...

    def clear_faults(self) -> None: ...

    def reference_charge_ah(self) -> float:
        """The bench's reference current meter, integrated (+ = into the pack)."""
        ...


@runtime_checkable
class BmsUnderTest(Protocol):
    smap: Any  # labctl.can.signals.SignalMap
    port: CanBus
    stimulus: PackStimulus | None

    def identify(self) -> dict[str, str]: ...

    def command(self, role: str, value: bool) -> None: ...

    def run_for(self, duration_s: float) -> list[Any]: ...

    def safe_state(self) -> None: ...

    def close(self) -> None: ...
