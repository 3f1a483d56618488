"""Where a simulated step ends inside a batch: the first sample where an end condition
or a safety limit holds, the exact instant by root finding on the same closed form,
and the batch cut there.

Helpers of `SimCyclerChannel` (labctl/sim/cycler.py), kept apart from the channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.capabilities.cycler import EndKind
from labctl.sim.control import Span, point_value
from labctl.sim.ecm import Track
from labctl.sim.events import Watch, first_firing, values_for
from labctl.sim.params import Params
from labctl.sim.roots import crossing_time
from labctl.sim.thermal import temperature_after


def track_values(key: str, track: Track, temps: np.ndarray | None,
            q_gross: np.ndarray | None) -> np.ndarray:
    if key == "v":
        return track.voltage_v
    if key == "i":
        return track.current_a
    if key == "temp":
        return temps
    return q_gross


def electrical_probe(watches: list[Watch]):
    """A check of the electrical watches on a coarse track (see control.solve_span); only
    for steps with end conditions (a safety limit rarely ends a step)."""
    if not any(w.kind is EndKind.CONDITION for w in watches):
        return None
    electrical = [w for w in watches if w.key in ("v", "i", "i_abs", "-i")]
    if not electrical:
        return None

    def probe(track: Track) -> int | None:
        return first_firing(electrical, lambda key: track_values(key, track, None, None), 1)[0]

    return probe


def needs_charge(watches: list[Watch]) -> bool:
    return any(w.key == "q" for w in watches)


def first_event(watches: list[Watch], span: Span, track: Track, temps: np.ndarray,
                 q_gross: np.ndarray | None, p: Params, world: Any, origin: float, start: int,
                 temp_range: tuple[float, float] | None = None):
    """(index, instant, watch, value there, restarted piece) of what ends the step first.

    `temp_range`: (min, max) bounds of temps when known (they only rule watches out)."""
    known = {} if track.dq_const is None else {"i": (track.current_a[0],) * 2}
    if temp_range is not None and len(temps) > start:
        known["temp"] = temp_range
    best_k, firing = first_firing(watches, lambda key: track_values(key, track, temps, q_gross), start,
                                  known)
    if best_k is None:
        return None
    if best_k == 0:
        w = firing[0]
        value0 = values_for(w.key, lambda key: track_values(key, track, temps, q_gross))[0]
        return 0, float(track.t[0]), w, float(value0), None
    j = best_k
    restarted = span.piece_of_interval(j - 1).from_point(track, j - 1)
    t_lo, t_hi = float(track.t[j - 1]), float(track.t[j])
    soc_lo = float(track.soc[j - 1])

    def ambient(t: float) -> float:
        return float(world.ambient_c_at(np.array([origin + t]))[0])

    def value(key: str, t: float) -> float:
        point = restarted.at(t)
        if key == "q":
            return float(q_gross[j - 1]) + abs(point.soc - soc_lo) * p.capacity_ah
        if key == "temp":
            return temperature_after(float(temps[j - 1]), t - t_lo, float(track.heat_w[j - 1]),
                                     ambient(t_lo), ambient(t), p.heat_capacity_j_per_k,
                                     p.heat_transfer_w_per_k)
        return point_value(key, point)

    best = None
    for w in firing:
        t_e = crossing_time(lambda t, w=w: w.margin(value(w.key, t)), t_lo, t_hi)
        v_e = value(w.key, t_e)
        if w.margin(v_e) < 0 or (w.strict and w.margin(v_e) == 0):
            # The control jumped at sample j (a profile step): the crossing is sample j
            # itself, with the values in force from then on.
            v_e = float(values_for(w.key, lambda key: track_values(key, track, temps, q_gross))[j])
            candidate = (j, t_hi, w, v_e, None)
        else:
            candidate = (j, t_e, w, v_e, restarted)
        if best is None or candidate[1] < best[1]:
            best = candidate
    return best


def end_at(track: Track, temps: np.ndarray, on_grid: np.ndarray | None, j: int, t_e: float,
            restarted: Any, p: Params, world: Any, origin: float):
    """The batch truncated so that its last point is the step's end instant t_e.

    Point j is overwritten in place (the batch's arrays are its own); without a
    `restarted` piece the step ends at sample j as it is.
    """
    if restarted is None:
        return track.head(j), temps[: j + 1], None if on_grid is None else on_grid[: j + 1]
    t_lo = float(track.t[j - 1])
    tail = restarted.segment_to(t_e)
    amb = world.constant_ambient_c(origin + t_lo, origin + t_e)
    amb_lo, amb_e = (amb, amb) if amb is not None else world.ambient_c_at(
        np.array([origin + t_lo, origin + t_e])).tolist()
    end = track.head(j)
    end.t = end.t.copy()  # the grid times may be a shared kernel
    end.t[j] = t_e
    end.soc[j] = tail.soc[1]
    end.v_rc[:, j] = tail.v_rc[:, 1]
    end.current_a[j] = tail.current_a[1]
    end.voltage_v[j] = tail.voltage_v[1]
    end.dq_ah[j - 1] = tail.dq_ah[0]
    end.de_wh[j - 1] = tail.de_wh[0]
    end.heat_w[j - 1] = tail.heat_w[0]
    end.dq_const = None
    temps = temps[: j + 1]
    temps[j] = temperature_after(float(temps[j - 1]), t_e - t_lo, float(tail.heat_w[0]),
                                 amb_lo, amb_e, p.heat_capacity_j_per_k,
                                 p.heat_transfer_w_per_k)
    if on_grid is not None:
        on_grid = on_grid[: j + 1].copy()
        on_grid[j] = True
    return end, temps, on_grid
