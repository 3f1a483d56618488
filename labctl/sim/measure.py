"""What the simulated instrument reports: true values plus Gaussian noise, then quantised.

Noise is added only to quantities with a sigma > 0. Each batch takes, per noisy
quantity, a stretch of a fixed table of standard normal draws at an offset (and a
sign) drawn from the channel's own seeded generator: one small draw per batch
instead of a normal draw per sample (read_all ~30 % cheaper in a simulated run).
The same seed and the same steps give identical data, and a restored generator
state continues the same sequence. The table (2^20 draws, 4 MB, from a fixed seed:
sim/noise_table.py, made once per process or read from the `labctl` command's cache) is
long against a batch (a few thousand samples), so stretches rarely overlap; a batch
longer than a quarter of it draws afresh.
"""

from __future__ import annotations

import math

import numpy as np

from labctl.errors import LabctlError
from labctl.sim import noise_table
from labctl.sim.pcg64 import SimRandom

QUANTITIES = ("voltage_v", "current_a", "temperature_c")
# Up to this many samples a batch is quantised as one block (see read_all); measured:
# 4.5 against 10 us at 50 samples, 6.4 against 7.5 at 1,720, even at 3,000.
_BLOCK_ROWS_MAX = 2048


def _settings(what: str, values: dict | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        if key not in QUANTITIES:
            raise LabctlError(f"simulated cycler {what}: unknown quantity {key!r}; "
                              f"allowed: {', '.join(QUANTITIES)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0
        ):
            raise LabctlError(f"simulated cycler {what}.{key}: must be a number >= 0, got {value!r}")
        if value > 0:
            out[key] = float(value)
    return out


class Meter:
    def __init__(self, noise: dict | None, resolution: dict | None,
                 rng: SimRandom | np.random.Generator):
        self.noise = _settings("noise", noise)
        self.resolution = _settings("resolution", resolution)
        self.rng = rng
        # What read_all needs, worked out once (it runs for every batch).
        self._noisy = [k for k, q in enumerate(QUANTITIES) if q in self.noise]
        self._sigma = np.array([self.noise[QUANTITIES[k]] for k in self._noisy],
                               np.float32)[:, None]
        self._sigmas = [self.noise[QUANTITIES[k]] for k in self._noisy]
        self._quiet = [k for k in range(len(QUANTITIES)) if k not in self._noisy]
        self._steps = np.array([self.resolution.get(q, 0.0) for q in QUANTITIES])
        self._quanta = [(k, step, 1.0 / step) for k, step in enumerate(self._steps.tolist())
                        if step > 0]
        self._block = None  # (1/step, step) as (3, 1) columns when every row is quantised
        if len(self._quanta) == len(QUANTITIES):
            self._block = (np.array([inverse for _, _, inverse in self._quanta])[:, None],
                           np.array([step for _, step, _ in self._quanta])[:, None])

    def read_all(self, voltage_v: np.ndarray, current_a: np.ndarray,
                 temperature_c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voltage, current and temperature readings; one draw from the generator per call."""
        if not self.noise and not self.resolution:
            return voltage_v, current_a, temperature_c
        n = len(voltage_v)
        out = np.empty((3, n))  # np.stack's checks cost more than these three copies
        values = (voltage_v, current_a, temperature_c)
        noisy = self._noisy
        if noisy and n <= noise_table.SIZE // 4:
            table = noise_table.table()
            # One raw 64-bit draw per quantity, scaled to [0, span) by a multiply-shift (off
            # uniform by span / 2**64 at most): its stretch of the table (high bits) and sign
            # (low bit). Generator.integers did the same in ~4 us a call, random_raw ~0.5 us.
            span = 2 * (noise_table.SIZE - n)
            # Python ints (a numpy Generator's raw draws are np.uint64: `raw * span` would wrap).
            raws = [int(r) for r in self.rng.bit_generator.random_raw(len(noisy))]
            for row, raw, sigma in zip(noisy, raws, self._sigmas, strict=True):
                pick = (raw * span) >> 64
                start = pick >> 1
                # value + noise straight into the output row (the same sum as a copy, then
                # +=, without the copy).
                np.add(values[row], table[start:start + n] * (-sigma if pick & 1 else sigma),
                       out=out[row])
            for row in self._quiet:
                out[row] = values[row]
        elif noisy:
            out[0], out[1], out[2] = values
            # float32 draws: faster, and plenty for noise a few decades below the signal.
            draws = self.rng.standard_normal((len(noisy), n), dtype=np.float32)
            draws *= self._sigma
            if len(noisy) == 3:
                out += draws
            else:
                out[noisy] += draws
        else:
            out[0], out[1], out[2] = values
        # x * (1/step) instead of x / step, a third of the cost (the two round to the same
        # count unless x / step is within an ulp of a half-integer).
        if self._block is not None and n <= _BLOCK_ROWS_MAX:
            # Every row quantised: three calls on the whole block, with a (3, 1) operand
            # (the same products as row by row, without six calls' overhead).
            inverse, step = self._block
            np.multiply(out, inverse, out=out)
            np.rint(out, out=out)
            np.multiply(out, step, out=out)
        else:
            # A scalar operand takes numpy's contiguous SIMD loops, which the broadcast
            # does not: row by row wins on long batches.
            for k, step, inverse in self._quanta:
                row = out[k]
                np.multiply(row, inverse, out=row)
                np.rint(row, out=row)
                np.multiply(row, step, out=row)
        return out[0], out[1], out[2]
