"""A batch of CAN frames as numpy arrays: what the decoder and the checks work on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class FrameBatch:
    """n frames: time, id, direction and the data bytes as an (n, 8) uint8 array (zero-padded)."""

    time_s: np.ndarray  # float64
    arbitration_id: np.ndarray  # uint32
    is_extended: np.ndarray  # bool
    dlc: np.ndarray  # uint8
    data: np.ndarray  # (n, 8) uint8
    is_rx: np.ndarray  # bool: received by labctl (sent by the device under test)

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def empty(cls) -> FrameBatch:
        return cls(np.zeros(0), np.zeros(0, np.uint32), np.zeros(0, bool), np.zeros(0, np.uint8),
                   np.zeros((0, 8), np.uint8), np.zeros(0, bool))

    @classmethod
    def from_messages(cls, messages: Iterable) -> FrameBatch:
        """From python-can `Message`s (classic CAN, up to 8 bytes)."""
        msgs = list(messages)
        n = len(msgs)
        if n == 0:
            return cls.empty()
        # One bytes join and one frombuffer instead of n small numpy writes.
        raw = b"".join(bytes(m.data[:8]).ljust(8, b"\0") for m in msgs)
        return cls(
            np.fromiter((m.timestamp for m in msgs), float, n),
            np.fromiter((m.arbitration_id for m in msgs), np.uint32, n),
            np.fromiter((m.is_extended_id for m in msgs), bool, n),
            np.fromiter((m.dlc for m in msgs), np.uint8, n),
            np.frombuffer(raw, np.uint8).reshape(n, 8).copy(),
            np.fromiter((m.is_rx for m in msgs), bool, n),
        )

    def select(self, mask: np.ndarray) -> FrameBatch:
        return FrameBatch(self.time_s[mask], self.arbitration_id[mask], self.is_extended[mask],
                          self.dlc[mask], self.data[mask], self.is_rx[mask])

    def sorted(self) -> FrameBatch:
        return self.select(np.argsort(self.time_s, kind="stable"))

    @staticmethod
    def concat(batches: Iterable[FrameBatch]) -> FrameBatch:
        bs = [b for b in batches if len(b)]
        if not bs:
            return FrameBatch.empty()
        return FrameBatch(*(np.concatenate([getattr(b, f) for b in bs]) for f in
                            ("time_s", "arbitration_id", "is_extended", "dlc", "data", "is_rx")))

    def to_messages(self) -> list:
        import can

        return [can.Message(timestamp=float(t), arbitration_id=int(i), is_extended_id=bool(e),
                            dlc=int(d), data=bytes(row[:d]), is_rx=bool(rx))
                for t, i, e, d, row, rx in zip(self.time_s, self.arbitration_id, self.is_extended,
                                               self.dlc, self.data, self.is_rx, strict=True)]
