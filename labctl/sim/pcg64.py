"""The simulators' noise generator: numpy's PCG64, seeded as `np.random.default_rng(seed)`
seeds it, with its raw stream in plain Python.

Why not numpy's own: importing `numpy.random` costs 6-10 ms (measured on the 2-core
machine), and a simulated `labctl run` needs it only for a few raw 64-bit draws per batch
(the offsets into the noise table, sim/measure.py) and for the generators' states in the
journal's snapshots. Both are exact here: the same seeding (SeedSequence with a 4-word
pool, then PCG64's set-seed), the same 128-bit LCG and XSL-RR output, the same state dict
(so journals written by either read back in the other). Anything else (normal draws: a
noisy chamber or rig, the potentiostat, a batch too long for the noise table) goes to a
numpy Generator given this state, whose state is taken back after the draw; only then is
`numpy.random` imported. tests/sim/test_pcg64.py checks every part against numpy.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
# PCG's default 128-bit LCG multiplier (O'Neill), as numpy's pcg64 uses it.
_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341

# numpy's SeedSequence: the hash constants of its entropy pool (pool of 4 words).
_POOL_SIZE = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = 16


def _words32(n: int) -> list[int]:
    """A non-negative integer as 32-bit words, lowest first (0 is one word)."""
    if n < 0:
        raise ValueError("expected a non-negative seed")
    words = [n & _MASK32]
    n >>= 32
    while n:
        words.append(n & _MASK32)
        n >>= 32
    return words


class _Hash:
    """The multiplier SeedSequence's hash changes as it goes."""

    def __init__(self) -> None:
        self.const = _INIT_A

    def mix_in(self, value: int) -> int:
        value ^= self.const
        self.const = (self.const * _MULT_A) & _MASK32
        value = (value * self.const) & _MASK32
        return value ^ (value >> _XSHIFT)


def _mix(x: int, y: int) -> int:
    result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
    return result ^ (result >> _XSHIFT)


def _seed_pool(seed: int) -> list[int]:
    """SeedSequence(seed)'s entropy pool."""
    entropy = _words32(seed)
    h = _Hash()
    pool = [h.mix_in(entropy[i] if i < len(entropy) else 0) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                pool[dst] = _mix(pool[dst], h.mix_in(pool[src]))
    for extra in entropy[_POOL_SIZE:]:
        for dst in range(_POOL_SIZE):
            pool[dst] = _mix(pool[dst], h.mix_in(extra))
    return pool


def _seed_words64(seed: int, n: int) -> list[int]:
    """SeedSequence(seed).generate_state(n, uint64) as Python ints."""
    pool = _seed_pool(seed)
    const = _INIT_B
    words = []
    for i in range(2 * n):
        value = pool[i % _POOL_SIZE] ^ const
        const = (const * _MULT_B) & _MASK32
        value = (value * const) & _MASK32
        words.append(value ^ (value >> _XSHIFT))
    # Two 32-bit words make one 64-bit word, the first one low (numpy's little-endian view).
    return [words[2 * i] | (words[2 * i + 1] << 32) for i in range(n)]


class PCG64:
    """numpy.random.PCG64's seeding, raw stream and `state`, in Python."""

    def __init__(self, seed: int = 0):
        # Held while the state moves, as numpy's bit generators hold theirs: a chamber shared
        # by the channels' threads must not hand two of them the same draw.
        self.lock = threading.Lock()
        seed_hi, seed_lo, inc_hi, inc_lo = _seed_words64(int(seed), 4)
        self._inc = (((inc_hi << 64) | inc_lo) << 1 | 1) & _MASK128
        state = (self._inc) & _MASK128  # 0 * multiplier + inc: the first step from 0
        state = (state + ((seed_hi << 64) | seed_lo)) & _MASK128
        self._state = (state * _MULTIPLIER + self._inc) & _MASK128
        self._has_uint32 = 0
        self._uinteger = 0

    def random_raw(self, n: int) -> list[int]:
        """The next n raw 64-bit outputs (numpy's `random_raw(n)`, as Python ints)."""
        out = []
        with self.lock:
            s, inc = self._state, self._inc
            for _ in range(n):
                s = (s * _MULTIPLIER + inc) & _MASK128
                value = ((s >> 64) ^ s) & _MASK64
                rot = s >> 122
                out.append(((value >> rot) | (value << (64 - rot))) & _MASK64)
            self._state = s
        return out

    @property
    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"bit_generator": "PCG64",
                    "state": {"state": self._state, "inc": self._inc},
                    "has_uint32": self._has_uint32, "uinteger": self._uinteger}

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        # What numpy's setter refuses is refused here too (TypeError, ValueError, KeyError),
        # and what it would overflow on or truncate (a damaged snapshot): nothing changes.
        if not isinstance(value, dict):
            raise TypeError("state must be a dict")
        if value.get("bit_generator", "") != "PCG64":
            raise ValueError("state must be for a PCG64 PRNG")
        inner = value["state"]
        state, inc = _integer(inner["state"], 0, 1 << 128), _integer(inner["inc"], 0, 1 << 128)
        # numpy keeps these two as a C int and a uint32.
        has_uint32 = _integer(value["has_uint32"], -(1 << 31), 1 << 31)
        uinteger = _integer(value["uinteger"], 0, 1 << 32)
        with self.lock:
            self._state, self._inc = state, inc
            self._has_uint32, self._uinteger = has_uint32, uinteger


def _integer(value: Any, low: int, end: int) -> int:
    """An integer (Python's or numpy's, not a bool or float) in [low, end)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"expected an integer, got {type(value).__name__}") from None
    if not low <= value < end:
        raise ValueError(f"{value} is outside {low}..{end - 1}")
    return value


class SimRandom:
    """What the simulators use of `np.random.Generator`, on a Python PCG64: `bit_generator`
    (raw draws, state) here; `normal` and `standard_normal` through numpy, on the same
    stream."""

    def __init__(self, seed: int = 0):
        self.bit_generator = PCG64(seed)
        self._numpy: Any = None  # the numpy Generator the draws go through, made on first use

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        return self._through_numpy("normal", loc, scale, size)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> Any:
        return self._through_numpy("standard_normal", size, dtype)

    def _through_numpy(self, method: str, *args: Any) -> Any:
        bits = self.bit_generator
        with bits.lock:  # state in, draw, state out: one step for other threads
            if self._numpy is None:
                import numpy as np

                self._numpy = np.random.Generator(np.random.PCG64(0))
            numpy_bits = self._numpy.bit_generator
            numpy_bits.state = {"bit_generator": "PCG64",
                                "state": {"state": bits._state, "inc": bits._inc},
                                "has_uint32": bits._has_uint32, "uinteger": bits._uinteger}
            out = getattr(self._numpy, method)(*args)
            after = numpy_bits.state
            bits._state, bits._inc = after["state"]["state"], after["state"]["inc"]
            bits._has_uint32, bits._uinteger = after["has_uint32"], after["uinteger"]
        return out


def default_rng(seed: int = 0) -> SimRandom:
    """The generator `np.random.default_rng(seed)` would be, for the simulators."""
    return SimRandom(seed)
