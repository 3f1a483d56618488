"""Decomposition reactions of a cell under thermal abuse, and the preset files describing them.

Each reaction has a conversion alpha (0 -> 1) and releases `heat_j` in total
(negative: an endotherm, e.g. Li melting). Kinetics:

* ``arrhenius``: dalpha/dt = A exp(-Ea / R T) (1 - alpha)^n exp(k (soc - 1))
  (reactant depletion through (1 - alpha)^n; a fuller cell reacts faster, k = soc_sensitivity);
* ``melting``: dalpha/dt = max(T - T_melt, 0) / tau (1 - alpha)
  (a phase change: nothing below the melting point, fast above it).

A preset may give A directly (`frequency_factor_per_s`) or through `onset_c`: the
temperature at which this reaction alone, at zero conversion and reference SoC,
heats the cell (heat capacity C) adiabatically at the ARC detection threshold
0.02 °C/min: A = r_th / ((H / C) exp(-Ea / R T_on)). That is how an ARC onset is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError, Problem, ValidationError

R_GAS_J_PER_MOL_K = 8.314462618
ZERO_C_K = 273.15
ARC_THRESHOLD_C_PER_MIN = 0.02  # the usual ARC self-heating detection threshold
KINDS = ("arrhenius", "melting")


@dataclass(frozen=True)
class Reaction:
    name: str
    heat_j: float  # total heat at full conversion; < 0 for an endotherm
    kind: str = "arrhenius"
    frequency_factor_per_s: float = 0.0
    activation_energy_j_per_mol: float = 0.0
    order: float = 1.0
    soc_sensitivity: float = 0.0
    melt_c: float = 180.5
    melt_time_constant_k_s: float = 30.0

    def rate_per_s(self, temperature_c: float, alpha: float, soc: float) -> float:
        """dalpha/dt at one state."""
        left = max(1.0 - alpha, 0.0)
        if left == 0.0:
            return 0.0
        if self.kind == "melting":
            return max(temperature_c - self.melt_c, 0.0) / self.melt_time_constant_k_s * left
        t_k = temperature_c + ZERO_C_K
        k = self.frequency_factor_per_s * math.exp(-self.activation_energy_j_per_mol
                                                   / (R_GAS_J_PER_MOL_K * t_k))
        if self.soc_sensitivity:
            k *= math.exp(self.soc_sensitivity * (soc - 1.0))
        return k * left ** self.order


def frequency_factor_from_onset(onset_c: float, heat_j: float, heat_capacity_j_per_k: float,
                                activation_energy_j_per_mol: float,
                                threshold_c_per_min: float = ARC_THRESHOLD_C_PER_MIN) -> float:
    """A such that the reaction alone self-heats at `threshold` at `onset_c` (alpha = 0)."""
    dt_ad = abs(heat_j) / heat_capacity_j_per_k
    t_k = onset_c + ZERO_C_K
    return (threshold_c_per_min / 60.0) / (
        dt_ad * math.exp(-activation_energy_j_per_mol / (R_GAS_J_PER_MOL_K * t_k)))


@dataclass(frozen=True)
class AbusePreset:
    """A cell as the calorimeter sees it: heat capacity, heat exchange, reactions."""

    name: str
    heat_capacity_j_per_k: float
    heat_exchange_w_per_k: float  # cell <-> calorimeter air when not adiabatic
    reactions: tuple[Reaction, ...]
    internal_resistance_ohm: float = 0.03  # Joule heat while charged (overcharge)
    description: str = ""
    source: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def total_heat_j(self) -> float:
        """Heat of every exotherm at full conversion (endotherms not subtracted)."""
        return sum(r.heat_j for r in self.reactions if r.heat_j > 0)

    def rates(self, temperature_c: float, alpha: np.ndarray, soc: float) -> np.ndarray:
        return np.array([r.rate_per_s(temperature_c, float(a), soc)
                         for r, a in zip(self.reactions, alpha, strict=True)])

    def heats_j(self) -> np.ndarray:
        return np.array([r.heat_j for r in self.reactions])


# -- preset files -------------------------------------------------------------------------------

_TOP = ("name", "description", "heat_capacity_j_per_k", "heat_exchange_w_per_k",
        "internal_resistance_ohm", "soc_sensitivity", "reactions", "notes")
_REACTION = ("name", "kind", "heat_j", "onset_c", "frequency_factor_per_s",
             "activation_energy_kj_per_mol", "order", "soc_sensitivity", "melt_c",
             "melt_time_constant_k_s", "notes")


def presets_folder() -> Path:
    """fixtures/abuse/ of the labctl checkout."""
    return Path(__file__).resolve().parents[3] / "fixtures" / "abuse"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_folder().glob("*.yaml"))


def load_preset(ref: str | Path) -> AbusePreset:
    """A preset by name (fixtures/abuse/<name>.yaml) or by file path."""
    path = Path(ref)
    if not path.suffix:
        path = presets_folder() / f"{ref}.yaml"
    if not path.is_file():
        raise LabctlError(f"abuse preset {str(ref)!r} not found; presets: {', '.join(preset_names())}")
    from labctl.yamlio import load_file

    doc = load_file(path)
    problems: list[Problem] = []
    data = doc.data if isinstance(doc.data, dict) else None
    if data is None:
        raise ValidationError([doc.problem((), "an abuse preset is a mapping with 'reactions:'")])
    for key in data:
        if key not in _TOP:
            problems.append(doc.problem((key,), f"unknown key {key!r}; allowed: {', '.join(_TOP)}"))

    def number(path: tuple, value: Any, *, positive: bool = False, required: bool = True
               ) -> float | None:
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(doc.problem(path, f"must be a finite number, got {value!r}"))
            return None
        if positive and value <= 0:
            problems.append(doc.problem(path, f"must be greater than zero, got {value!r}"))
            return None
        return float(value)

    cap = number(("heat_capacity_j_per_k",), data.get("heat_capacity_j_per_k"), positive=True)
    h = number(("heat_exchange_w_per_k",), data.get("heat_exchange_w_per_k"), positive=True)
    r_int = number(("internal_resistance_ohm",), data.get("internal_resistance_ohm", 0.03))
    k_soc = number(("soc_sensitivity",), data.get("soc_sensitivity", 0.0))
    raw = data.get("reactions")
    reactions: list[Reaction] = []
    if not isinstance(raw, list) or not raw:
        problems.append(doc.problem(("reactions",), "reactions must be a non-empty list"))
        raw = []
    for i, item in enumerate(raw):
        where = ("reactions", i)
        if not isinstance(item, dict):
            problems.append(doc.problem(where, "a reaction is a mapping"))
            continue
        for key in item:
            if key not in _REACTION:
                problems.append(doc.problem(where + (key,), f"unknown key {key!r}; allowed: "
                                                            f"{', '.join(_REACTION)}"))
        kind = item.get("kind", "arrhenius")
        if kind not in KINDS:
            problems.append(doc.problem(where + ("kind",), f"kind must be one of {', '.join(KINDS)}"))
            continue
        heat = number(where + ("heat_j",), item.get("heat_j"))
        name = str(item.get("name", f"reaction {i + 1}"))
        if kind == "melting":
            melt = number(where + ("melt_c",), item.get("melt_c"))
            tau = number(where + ("melt_time_constant_k_s",), item.get("melt_time_constant_k_s", 30.0),
                         positive=True)
            if None not in (heat, melt, tau):
                reactions.append(Reaction(name, heat, "melting", melt_c=melt,
                                          melt_time_constant_k_s=tau))
            continue
        ea_kj = number(where + ("activation_energy_kj_per_mol",),
                       item.get("activation_energy_kj_per_mol"), positive=True)
        order = number(where + ("order",), item.get("order", 1.0), positive=True)
        k_r = number(where + ("soc_sensitivity",), item.get("soc_sensitivity", k_soc))
        onset = number(where + ("onset_c",), item.get("onset_c"), required=False)
        a = number(where + ("frequency_factor_per_s",), item.get("frequency_factor_per_s"),
                   positive=True, required=False)
        if (onset is None) == (a is None):
            problems.append(doc.problem(where, "give exactly one of onset_c and frequency_factor_per_s"))
            continue
        if None in (heat, ea_kj, order, k_r, cap):
            continue
        if a is None:
            a = frequency_factor_from_onset(onset, heat, cap, ea_kj * 1e3)
        reactions.append(Reaction(name, heat, "arrhenius", a, ea_kj * 1e3, order, k_r))
    if problems or cap is None or h is None or r_int is None:
        raise ValidationError(problems)
    return AbusePreset(name=str(data.get("name", path.stem)), heat_capacity_j_per_k=cap,
                       heat_exchange_w_per_k=h, reactions=tuple(reactions),
                       internal_resistance_ohm=r_int, description=str(data.get("description", "")),
                       source=str(path))
