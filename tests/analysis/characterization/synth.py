"""Synthetic cell data in closed form, for testing the analyses against known truth.

A schedule is a list of (duration_s, current_a) segments (positive = charge),
each logged every `dt_s` from its start (zero-order hold: the sample at a segment's
start already carries its current). The cell: OCV(SoC) + I R0(SoC) + RC pairs
with constant R and tau, so each RC voltage is a sum of step responses
I_k R (1 - exp(-(t - t_k) / tau)) over the current changes -- no numerical
integration anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def ocv_nmc(soc):
    """A smooth NMC-like OCV curve: steep below 10 %, gently curved in the middle."""
    soc = np.asarray(soc, dtype=float)
    return 3.45 + 0.62 * soc + 0.08 * soc**2 - 0.30 * np.exp(-soc / 0.05) + 0.05 * np.exp((soc - 1) / 0.04)


@dataclass(frozen=True)
class Truth:
    capacity_ah: float
    ocv: Callable[[np.ndarray], np.ndarray]
    r0_ohm: Callable[[np.ndarray], np.ndarray]
    rc: Sequence[tuple[float, float]]  # (r_ohm, tau_s)
    initial_soc: float = 1.0


def schedule_times(schedule: Sequence[tuple[float, float]], dt_s: float | Sequence[float],
                   t0: float = 0.0):
    """Sample times, step index, segment start times and currents of a schedule."""
    dts = [dt_s] * len(schedule) if np.isscalar(dt_s) else list(dt_s)
    times, steps, edges, currents = [], [], [], []
    t = t0
    for k, ((dur, cur), dt) in enumerate(zip(schedule, dts, strict=True)):
        n = int(np.ceil(dur / dt - 1e-9))
        times.append(t + dt * np.arange(n))
        steps.append(np.full(n, k + 1))
        edges.append(t)
        currents.append(cur)
        t += dur
    return np.concatenate(times), np.concatenate(steps), np.array(edges + [t]), np.array(currents)


def simulate(truth: Truth, schedule, dt_s, *, noise_v: float = 0.0, noise_i: float = 0.0,
             temperature_c: float = 25.0, hysteresis_v: float = 0.0,
             seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """(timeseries table, true SoC at each sample) for a schedule.

    `hysteresis_v`: the OCV sits hysteresis/2 above the curve after charging and
    below it after discharging (switching at once when the current changes sign).
    """
    t, step, edges, cur = schedule_times(schedule, dt_s)
    seg = np.searchsorted(edges, t, side="right") - 1
    i = cur[seg]
    # Charge moved up to each sample: whole earlier segments plus the part of this one.
    q_edges = np.concatenate([[0.0], np.cumsum(cur * np.diff(edges))])
    q = q_edges[seg] + i * (t - edges[seg])
    soc = truth.initial_soc + q / (3600.0 * truth.capacity_ah)
    v = truth.ocv(soc) + i * truth.r0_ohm(soc)
    if hysteresis_v:
        # The last nonzero current's sign, carried through rests.
        sign_seg = np.sign(cur)
        idx = np.maximum.accumulate(np.where(sign_seg != 0, np.arange(len(cur)), 0))
        v += 0.5 * hysteresis_v * sign_seg[idx][seg]
    d_i = np.diff(np.concatenate([[0.0], cur]))
    for r, tau in truth.rc:
        for tk, dk in zip(edges[:-1], d_i, strict=True):
            if dk != 0.0:
                on = t >= tk
                v[on] += dk * r * -np.expm1(-(t[on] - tk) / tau)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "test_time_s": t,
        "unix_time_s": 1.7e9 + t,
        "step_index": step.astype(np.int32),
        "cycle_index": np.ones(len(t), dtype=np.int32),
        "voltage_v": v + rng.normal(0.0, noise_v, len(t)) if noise_v else v,
        "current_a": i + rng.normal(0.0, noise_i, len(t)) if noise_i else i,
        "temperature_c": np.full(len(t), temperature_c),
    })
    return df, soc


def hppc_schedule(capacity_ah: float, setpoints: int = 9, soc_step: float = 0.1,
                  first_rest_s: float = 600.0, long_rest_s: float = 1200.0):
    """USABC-like: per set-point 10 s 1C discharge, 40 s rest, 10 s 0.75C charge, 40 s rest,
    then a 1C discharge of `soc_step` and a long rest."""
    one_c = capacity_ah
    sched = [(first_rest_s, 0.0)]
    for _ in range(setpoints):
        sched += [(10.0, -one_c), (40.0, 0.0), (10.0, 0.75 * one_c), (40.0, 0.0),
                  (soc_step * 3600.0, -one_c), (long_rest_s, 0.0)]
    return sched


def slab_surface_soc(t_s: np.ndarray, rate_per_s: float, l2_over_d_s: float,
                     n_terms: int = 400) -> np.ndarray:
    """Surface SoC change of a slab charged at a constant rate (SoC/s) through one face.

    Exact series (Crank): (rate L^2/D) [D t/L^2 + 1/3 - 2/pi^2 sum exp(-n^2 pi^2 D t/L^2)/n^2];
    zero at t <= 0. Average SoC changes by rate * t; for D t/L^2 << 1 the surface
    change is 2 rate sqrt(t L^2/(pi D)).
    """
    x = np.clip(np.asarray(t_s, dtype=float), 0.0, None) / l2_over_d_s
    # Beyond x = 4 even the first term is below 1e-17: the series is zero there.
    live = (x > 0) & (x < 4.0)
    series = np.zeros_like(x)
    # Terms die like exp(-n^2 pi^2 x): past x = 0.01, 25 of them reach 1e-26.
    for sel, terms in ((live & (x < 0.01), n_terms), (live & (x >= 0.01), 25)):
        n = np.arange(1, terms + 1)[:, None]
        series[sel] = np.sum(np.exp(-(n**2) * np.pi**2 * x[None, sel]) / n**2, axis=0)
    out = rate_per_s * l2_over_d_s * (x + 1.0 / 3.0 - 2.0 / np.pi**2 * series)
    return np.where(x > 0, out, 0.0)


def gitt_data(capacity_ah: float, current_a: float, pulse_s: float, rest_s: float,
              n_pulses: int, l2_over_d_s: float, ocv, r0_ohm: float, *, initial_soc: float = 1.0,
              first_rest_s: float = 600.0, dt_pulse_s: float = 1.0, dt_rest_s: float = 10.0,
              noise_v: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """GITT run in closed form: solid diffusion (slab, `slab_surface_soc`) plus an IR drop.

    The voltage is OCV(surface SoC) + I R0: the surface SoC is the average SoC
    plus the diffusion overshoot, a superposition of the on and off switching of
    every pulse.
    """
    sched = [(first_rest_s, 0.0)]
    for _ in range(n_pulses):
        sched += [(pulse_s, current_a), (rest_s, 0.0)]
    dts = [dt_rest_s] + [dt_pulse_s, dt_rest_s] * n_pulses
    t, step, edges, cur = schedule_times(sched, dts)
    seg = np.searchsorted(edges, t, side="right") - 1
    i = cur[seg]
    rate = current_a / (3600.0 * capacity_ah)
    surface = np.full(len(t), initial_soc)
    for k in range(n_pulses):
        on, off = edges[1 + 2 * k], edges[2 + 2 * k]
        # Long after switching the series has died away: only the linear part is left.
        surface += (slab_surface_soc(t - on, rate, l2_over_d_s)
                    - slab_surface_soc(t - off, rate, l2_over_d_s))
    v = ocv(surface) + i * r0_ohm
    rng = np.random.default_rng(seed)
    if noise_v:
        v = v + rng.normal(0.0, noise_v, len(t))
    return pd.DataFrame({"test_time_s": t, "step_index": step.astype(np.int32), "voltage_v": v,
                         "current_a": i, "temperature_c": np.full(len(t), 25.0)})
