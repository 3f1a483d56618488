"""The optional `model.ageing:` section of a cell file: how fast the simulated cell ages.

    model:
      ...
      ageing:
        cycle_fade_per_sqrt_efc: 0.0045    # capacity fraction lost per sqrt(equivalent full
                                           # cycle) at the reference temperature and 1C
        cycle_offset_efc: 200              # the sqrt law starts this far in (formation)
        cycle_activation_energy_ev: 0.33   # Arrhenius of cycle ageing
        c_rate_coefficient_per_c: 0.15     # cycle ageing x exp(k (C-rate - 1))
        calendar_fade_per_sqrt_day: 0.002  # capacity fraction lost per sqrt(day) at 50 % SoC
        calendar_offset_days: 30
        calendar_activation_energy_ev: 0.50
        calendar_soc_coefficient: 1.0      # calendar ageing x exp(k (SoC - 0.5))
        resistance_growth_per_fade: 2.0    # R x (1 + g * capacity loss)
        reference_temperature_c: 25
        acceleration: 1                    # multiplies every ageing rate (fast tests)

Every field is optional (defaults below); numbers are >= 0, offsets and the
acceleration > 0. The equations are in docs/cycling.md and labctl/sim/ageing.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AgeingParams:
    """Empirical ageing: sqrt laws in throughput and time, Arrhenius, C-rate and SoC factors."""

    cycle_fade_per_sqrt_efc: float = 0.0
    cycle_offset_efc: float = 200.0
    cycle_activation_energy_ev: float = 0.33
    c_rate_coefficient_per_c: float = 0.15
    calendar_fade_per_sqrt_day: float = 0.0
    calendar_offset_days: float = 30.0
    calendar_activation_energy_ev: float = 0.50
    calendar_soc_coefficient: float = 1.0
    resistance_growth_per_fade: float = 2.0
    reference_temperature_c: float = 25.0
    acceleration: float = 1.0


AGEING_FIELDS = tuple(f.name for f in fields(AgeingParams))
_POSITIVE = {"cycle_offset_efc", "calendar_offset_days", "acceleration"}
_ANY_SIGN = {"reference_temperature_c", "c_rate_coefficient_per_c", "calendar_soc_coefficient"}


def read_ageing(reader: Any, value: Any, path: tuple) -> AgeingParams | None:
    """`model.ageing` through the cell loader's reader (problems carry file, line, field)."""
    data = reader.mapping(value, path, AGEING_FIELDS, "any of " + ", ".join(AGEING_FIELDS))
    if data is None:
        return None
    defaults = AgeingParams()
    values: dict[str, float] = {}
    ok = True
    for name in AGEING_FIELDS:
        got = reader.number(
            data, name, path, required=False, default=None,
            positive=name in _POSITIVE,
            minimum=None if name in _POSITIVE | _ANY_SIGN else 0.0,
        )
        if name in data and got is None:
            ok = False
        values[name] = getattr(defaults, name) if got is None else got
    return AgeingParams(**values) if ok else None


def with_acceleration(params: AgeingParams, acceleration: float) -> AgeingParams:
    """The same ageing, `acceleration` times as fast (test and demo cells)."""
    from dataclasses import replace

    return replace(params, acceleration=float(acceleration))
