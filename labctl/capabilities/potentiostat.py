"""Potentiostat capability (impedance spectroscopy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PotentiostatRanges:
    min_frequency_hz: float
    max_frequency_hz: float
    max_current_a: float
    max_voltage_v: float


@dataclass
class Spectrum:
    """One impedance spectrum; Z = z_real_ohm + 1j * z_imag_ohm."""

    frequency_hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray


@runtime_checkable
class Potentiostat(Protocol):
    ranges: PotentiostatRanges

    def identify(self) -> dict[str, str]: ...

    def safe_state(self) -> None: ...

    def close(self) -> None: ...
