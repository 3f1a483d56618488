"""How each kind of step drives the cell, as a sequence of pieces over a span of times.

A controller picks the piece that runs from a given state (`piece`), says what
ends that piece early (`exits`, e.g. a CV hold leaving its linear stretch of the
OCV), and solves it (`solve`). `solve_span` chains pieces over a grid of times,
finding each switch-over instant by root finding; the switch-over points join
the returned track but are flagged as off the sampling grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.capabilities.cycler import EndKind
from labctl.capabilities.steps import ElectricalStep, Mode, Profile
from labctl.sim.ecm import CellState, CurrentPiece, HoldPiece, Point, Track, join_tracks
from labctl.sim.events import Watch, first_firing
from labctl.sim.params import Params
from labctl.sim.roots import crossing_time

# The power solver's fixed-point iteration contracts by about I/V * dOCV/dSoC * span/(3600 Q);
# shorter spans converge in a handful of iterations.
POWER_SPAN_S = 300.0
POWER_MAX_ITERATIONS = 60
POWER_TOLERANCE = 1e-11  # relative change of the current that counts as converged
HOLD_SWITCH_TOLERANCE = 1e-6  # a hold gives way to its current limit beyond this (relative)
_MAX_PIECES = 100_000  # per span; guards against a hold chattering at its limit
_PROBE_POINTS = 64  # a long piece is first solved at about this many of its times


class Control:
    """Constant current (or rest): one closed form, nothing ends it early."""

    max_span_s: float | None = None

    def __init__(self, current_a: float = 0.0):
        self.current_a = float(current_a)

    def piece(self, p: Params, state: CellState, t: float):
        return CurrentPiece(p, state, t, self.current_a)

    def exits(self, piece) -> list[Watch]:
        return []

    def exact_anywhere(self, piece) -> bool:
        """True if solving `piece` on any subset of times gives the same values there."""
        return piece.p.rc_const

    def solve(self, piece, t: np.ndarray, step_s: float | None = None) -> Track:
        if isinstance(piece, CurrentPiece):
            return piece.solve(t, step_s=step_s)
        return piece.solve(t)

    def extra_times(self) -> np.ndarray | None:
        """Times the solution must include (where a profile changes value)."""
        return None

    def nominal_current(self, p: Params, state: CellState) -> float:
        """About the current this step will draw from `state` (for planning batch lengths)."""
        return self.current_a


class HoldControl(Control):
    """Constant voltage with a current limit: CC at the limit until the voltage is reached."""

    def __init__(self, voltage_v: float, current_limit_a: float):
        self.voltage_v = float(voltage_v)
        self.limit_a = float(current_limit_a)
        self._switch_a = self.limit_a * (1.0 + HOLD_SWITCH_TOLERANCE) + 1e-12

    def piece(self, p: Params, state: CellState, t: float):
        hold = HoldPiece(p, state, t, self.voltage_v)
        i0 = hold.current_at_start()
        if abs(i0) > self._switch_a:
            return CurrentPiece(p, state, t, math.copysign(self.limit_a, i0))
        return hold

    def nominal_current(self, p: Params, state: CellState) -> float:
        i = (self.voltage_v - float(p.ocv(state.soc)) - sum(state.v_rc)) / float(p.r0(state.soc))
        return max(-self.limit_a, min(self.limit_a, i))

    def exact_anywhere(self, piece) -> bool:
        return isinstance(piece, HoldPiece) or piece.p.rc_const

    def exits(self, piece) -> list[Watch]:
        if isinstance(piece, HoldPiece):
            return [Watch("soc", True, piece.hi, EndKind.CONDITION, strict=True),
                    Watch("soc", False, piece.lo, EndKind.CONDITION, strict=True),
                    Watch("i_abs", True, self._switch_a, EndKind.CONDITION, strict=True)]
        return [Watch("v", piece.current_a > 0, self.voltage_v, EndKind.CONDITION)]


class ProfileControl(Control):
    """Current or power held from each profile time to the next."""

    def __init__(self, profile: Profile, power: bool, current_limit_a: float):
        self.times = np.asarray(profile.time_s, dtype=float)
        self.values = np.asarray(profile.value, dtype=float)
        self.power = power
        self.limit_a = float(current_limit_a)
        self.max_span_s = POWER_SPAN_S if power else None

    def value_at(self, t: np.ndarray) -> np.ndarray:
        # Before the first time the first value holds; after the last, the last.
        idx = np.searchsorted(self.times, t, side="right") - 1
        return self.values[np.clip(idx, 0, len(self.values) - 1)]

    def extra_times(self) -> np.ndarray | None:
        return self.times

    def exact_anywhere(self, piece) -> bool:
        return False  # the currents depend on the grid

    def piece(self, p: Params, state: CellState, t: float):
        value = float(self.value_at(np.array([t]))[0])
        if self.power:
            return PowerPiece(p, state, t, self._power_at, self.limit_a)
        return CurrentPiece(p, state, t, value)

    def _power_at(self, t: float) -> float:
        return float(self.value_at(np.array([t]))[0])

    def nominal_current(self, p: Params, state: CellState) -> float:
        peak = float(np.max(np.abs(self.values)))
        if self.power:
            peak /= max(float(p.ocv(state.soc)) + sum(state.v_rc), 0.1)
        return min(peak, self.limit_a)

    def solve(self, piece, t: np.ndarray, step_s: float | None = None) -> Track:
        demand = self.value_at(t)
        if not self.power:
            return piece.solve(t, np.clip(demand[:-1], -self.limit_a, self.limit_a),
                               last_current=float(np.clip(demand[-1], -self.limit_a, self.limit_a)))
        return solve_power(piece, t, demand, self.limit_a)


class PowerControl(ProfileControl):
    """Constant power: a one-point profile."""

    def __init__(self, power_w: float, current_limit_a: float):
        super().__init__(Profile((0.0,), (float(power_w),)), True, current_limit_a)

    def extra_times(self) -> np.ndarray | None:
        return None


def _current_for_power(power_w, emf_v, r0_ohm, limit_a):
    """I with (E + I R0) I = P; beyond what the cell can deliver, its maximum-power current."""
    disc = emf_v * emf_v + 4.0 * r0_ohm * power_w
    root = np.sqrt(np.maximum(disc, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        i = np.where(disc > 0, 2.0 * power_w / (emf_v + root), -emf_v / (2.0 * r0_ohm))
    return np.clip(i, -limit_a, limit_a)


class PowerPiece(CurrentPiece):
    """A stretch of a power step: over each interval the current is held at the mean of
    the currents that draw the power at its two ends (trapezoid: the charge moved, and so
    the SoC, is second-order accurate in the interval length); at any instant the
    reported current and voltage are the ones that draw the power exactly there."""

    def __init__(self, params: Params, state: CellState, t0: float,
                 power_at: Callable[[float], float], limit_a: float,
                 current_a: float | None = None, rc_soc: float | None = None):
        self.power_at = power_at
        self.power_w = power_at(t0)
        self.limit_a = limit_a
        if current_a is None:
            emf = params.ocv1(state.soc) + sum(state.v_rc)
            current_a = float(_current_for_power(self.power_w, emf, params.r01(state.soc),
                                                 limit_a))
        super().__init__(params, state, t0, current_a, rc_soc)

    def _drawing_power(self, soc: float, voltage_v: float, current_a: float) -> tuple[float, float]:
        r0 = self.p.r01(soc)
        emf = voltage_v - current_a * r0
        i = float(_current_for_power(self.power_w, emf, r0, self.limit_a))
        return i, emf + i * r0

    def at(self, t: float) -> Point:
        held = super().at(t)
        i, v = self._drawing_power(held.soc, held.voltage_v, held.current_a)
        return Point(held.soc, held.v_rc, i, v)

    def segment_to(self, t1: float) -> Track:
        track = super().segment_to(t1)
        for k in (0, 1):
            track.current_a[k], track.voltage_v[k] = self._drawing_power(
                float(track.soc[k]), float(track.voltage_v[k]), float(track.current_a[k]))
        return track

    def from_point(self, track: Track, k: int) -> PowerPiece:
        held = super().from_point(track, k)
        return PowerPiece(self.p, held.state, held.t0, self.power_at, self.limit_a,
                          held.current_a, held.rc_soc)


def solve_power(piece: CurrentPiece, t: np.ndarray, power_w: np.ndarray, limit_a: float) -> Track:
    """Currents that draw `power_w` (per time; an interval draws its start value).

    Fixed-point iteration: given the held currents, the trajectory gives the EMF (OCV +
    RC voltages) at every sample; the quadratic (E + I R0) I = P gives the current that
    draws the power there, and each interval holds the mean of its two ends (a
    zero-order hold at the start value would bias the SoC by O(dt) and move a cut-off
    by tens of milliseconds per second of grid). Every sample then reports the current
    that draws the power exactly at that instant: V * I = P at every sample.
    """
    p = piece.p
    s0 = piece.state.soc
    emf0 = float(p.ocv(s0)) + sum(piece.state.v_rc)
    demand = power_w[:-1]
    current = np.full(len(t) - 1, float(_current_for_power(power_w[0], emf0, float(p.r0(s0)),
                                                           limit_a)))
    for _ in range(POWER_MAX_ITERATIONS):
        track = piece.solve(t, current)
        r0 = p.r0(track.soc)
        emf = track.voltage_v - track.current_a * r0
        new = _current_for_power(demand, emf[:-1], r0[:-1], limit_a)
        new += _current_for_power(demand, emf[1:], r0[1:], limit_a)
        new *= 0.5
        change = float(np.max(np.abs(new - current))) if len(new) else 0.0
        current = new
        if change <= POWER_TOLERANCE * max(1.0, float(np.max(np.abs(new), initial=0.0))):
            break
    track = piece.solve(t, current)
    r0 = p.r0(track.soc)
    emf = track.voltage_v - track.current_a * r0
    track.current_a = np.asarray(_current_for_power(power_w, emf, r0, limit_a), dtype=float)
    track.voltage_v = emf + track.current_a * r0
    return track


def make_control(step: ElectricalStep, current_limit_a: float) -> Control:
    if step.mode is Mode.REST:
        return Control(0.0)
    if step.mode is Mode.CURRENT:
        return Control(step.value)
    if step.mode is Mode.VOLTAGE:
        return HoldControl(step.value, current_limit_a)
    if step.mode is Mode.POWER:
        return PowerControl(step.value, current_limit_a)
    if step.profile is None:
        raise ValueError(f"{step.mode.value} step without a profile")
    return ProfileControl(step.profile, step.mode is Mode.POWER_PROFILE, current_limit_a)


# -- chaining pieces over a span ------------------------------------------------------------


@dataclass
class Span:
    """The fine track over a batch: grid times plus switch-over instants."""

    track: Track
    on_grid: np.ndarray | None  # None: every point is a grid time
    starts: list[int]  # index of the first point of each piece
    pieces: list
    step_s: float | None = None  # the spacing of the points when it is uniform

    def piece_of_interval(self, k: int):
        """The piece that covers the interval starting at point k."""
        j = len(self.starts) - 1
        while self.starts[j] > k:
            j -= 1
        return self.pieces[j]


def point_value(key: str, point) -> float:
    if key == "v":
        return point.voltage_v
    if key == "soc":
        return point.soc
    if key == "i":
        return point.current_a
    if key == "i_abs":
        return abs(point.current_a)
    return -point.current_a  # "-i"


def solve_span(control: Control, p: Params, state: CellState, times: np.ndarray,
               on_grid: np.ndarray | None, step_s: float | None = None,
               probe: Callable[[Track], int | None] | None = None) -> Span:
    """Run `control` from `state` over `times`, switching pieces where it must.

    `step_s` is the spacing of `times` when it is uniform. `probe(track)` returns the
    first index (>= 1) where something ends the step; the span may stop there.
    """
    piece = control.piece(p, state, float(times[0]))
    exits = control.exits(piece)
    track = _solve_piece(control, piece, times, step_s, exits, probe)
    hit = _first_exit(exits, track) if exits else None
    grid = on_grid
    if hit is None:
        return Span(track, None if grid is None else grid[: len(track)], [0], [piece], step_s)
    if grid is None:
        grid = np.ones(len(times), dtype=bool)
    parts: list[Track] = []
    flags: list[np.ndarray] = []
    starts, pieces = [0], [piece]
    rest = times  # the grid times the current piece was asked to cover
    for _ in range(_MAX_PIECES):
        if hit is None:
            parts.append(track)
            flags.append(grid[: len(track)])
            break
        k, watch = hit
        restarted = piece.from_point(track, k - 1)
        t_lo, t_hi = float(track.t[k - 1]), float(track.t[k])
        t_e = crossing_time(lambda t, w=watch, r=restarted: w.margin(point_value(w.key, r.at(t))),
                            t_lo, t_hi)
        tail = restarted.segment_to(t_e)
        parts += (track.head(k - 1), tail)  # joined once, with the rest, at the end
        at_grid = t_e >= t_hi
        flags.append(np.concatenate([grid[:k], [bool(at_grid and grid[k])]]))
        # The next piece starts at t_e and covers the grid times after it.
        first_next = k + 1 if at_grid else k
        if first_next >= len(rest):
            break
        new_state = CellState(float(tail.soc[-1]), tuple(float(x) for x in tail.v_rc[:, -1]),
                              state.temperature_c)
        piece = control.piece(p, new_state, t_e)
        exits = control.exits(piece)
        rest = np.concatenate([[t_e], rest[first_next:]])
        grid = np.concatenate([flags[-1][-1:], grid[first_next:]])
        track = _solve_piece(control, piece, rest, None, exits, probe)
        starts.append(sum(len(x) for x in parts) - len(parts))
        pieces.append(piece)
        hit = _first_exit(exits, track) if exits else None
    else:
        raise RuntimeError("simulated step switched control more than "
                           f"{_MAX_PIECES} times in one batch")
    joined_flags = np.concatenate([flags[0]] + [f[1:] for f in flags[1:]])
    return Span(join_tracks(parts), joined_flags, starts, pieces)


def _solve_piece(control: Control, piece, t: np.ndarray, step_s: float | None,
                 exits: list[Watch], probe: Callable[[Track], int | None] | None) -> Track:
    """Solve a piece, first on a coarse subset of `t` when that is exact, so that a piece
    that ends early (an exit, or the step's end) is not solved on the whole grid."""
    n = len(t)
    if n > 4 * _PROBE_POINTS and (exits or probe) and control.exact_anywhere(piece):
        idx = np.arange(0, n, n // _PROBE_POINTS)
        if idx[-1] != n - 1:
            idx = np.concatenate((idx, (n - 1,)))
        coarse = piece.solve(t[idx], points_only=True)  # exact_anywhere: CC or hold
        stops = [k for k in ((_first_exit(exits, coarse) or (None,))[0],
                             probe(coarse) if probe else None) if k is not None]
        if stops:
            t = t[: idx[min(stops)] + 1]
    return control.solve(piece, t, step_s)


def _first_exit(exits: list[Watch], track: Track) -> tuple[int, Watch] | None:
    k, firing = first_firing(exits, lambda key: _point_arrays(key, track), 1)
    return None if k is None else (k, firing[0])


def _point_arrays(key: str, track: Track) -> np.ndarray:
    if key == "soc":
        return track.soc
    if key == "v":
        return track.voltage_v
    return track.current_a


__all__ = ["Control", "HoldControl", "PowerControl", "PowerPiece", "ProfileControl", "Span",
           "make_control", "point_value", "solve_power", "solve_span"]
