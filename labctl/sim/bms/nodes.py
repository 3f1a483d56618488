"""CAN nodes of the simulated BMS: who sends which message, when, and with which integrity data.

Topologies (seed facts) as configurations:

- centralized: one controller sends every message; measurements reach it at once;
- modular: module cards send their own cells' voltage/temperature messages, the main
  controller the rest; readings reach it after `latency_s` (default 10 ms);
- master-slave: as modular, slaves measure and balance, master protects (20 ms);
- distributed: a card per cell; the card of a message's first cell sends it (30 ms).

A message whose cells span several modules is sent by the master. Each node has its
own phase (seeded) and each frame a small jitter. Frame-level faults (dropped,
delayed, bad checksum) and a dead node act here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.can.signals import SignalMap


@dataclass
class Schedule:
    message: str
    node: str
    period_s: float
    next_s: float
    cells: tuple[int, ...]  # 0-based cells whose readings this message carries
    counter: int = 0
    drop_left: int = 0
    drop_every: int = 0  # drop every k-th frame (0 = off)
    delay_s: float = 0.0
    delay_left: int = 0
    bad_checksum_left: int = 0
    sent: int = field(default=0)
    phase_s: float = 0.0
    n: int = 0  # frames scheduled so far: next_s = phase_s + n * period_s (no drift)
    last_stamp: float = float("-inf")  # a node's frames leave in order: none overtakes a delayed one

    def advance(self) -> None:
        self.n += 1
        self.next_s = self.phase_s + self.n * self.period_s


def node_for(topology: str, cells: tuple[int, ...], per_module: int) -> str:
    if not cells or topology == "centralized":
        return "master"
    if topology == "distributed":
        return f"cell{cells[0] + 1}"
    modules = {c // per_module for c in cells}
    return f"module{modules.pop() + 1}" if len(modules) == 1 else "master"


def build_schedules(smap: SignalMap, topology: str, seed: int) -> list[Schedule]:
    rng = np.random.default_rng(seed + 7919)
    cells_of: dict[str, set[int]] = {}
    for role in ("cell_voltage_v", "cell_temperature_c"):
        for i, ref in enumerate(smap.per_cell.get(role, [])):
            cells_of.setdefault(ref.message, set()).add(i)
    phase: dict[str, float] = {}
    out = []
    for name in smap.device_messages():
        period = smap.period_s(name) or 0.1
        cells = tuple(sorted(cells_of.get(name, ())))
        node = node_for(topology, cells, smap.cells_per_module)
        if node not in phase:  # each node starts its schedule at its own offset
            phase[node] = 0.0 if node == "master" else float(rng.uniform(0.0, 0.005))
        start = phase[node] + 0.0005 * len(out) % period
        out.append(Schedule(name, node, period, start, cells, phase_s=start))
    return out


def nodes_with_cells(schedules: list[Schedule]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for s in schedules:
        if s.node != "master":
            out.setdefault(s.node, set()).update(s.cells)
    return out
