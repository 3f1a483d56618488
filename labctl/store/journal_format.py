"""The journal's on-disk format: record header, constants, event encoding, sample layout.

See `labctl/store/journal.py` for the format and its crash-safety rules; the
writer lives there, the reader in `journal_reader.py`.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import describe_os_error
from labctl.store.journal_packing import MAX_ROWS, PackedBlock
from labctl.store.rundir import JOURNAL_NAME  # noqa: F401 - the journal's name is public here too

try:
    # The same CRC-32 as zlib's, ~10x faster (SIMD folding): checksumming the sample
    # blocks was ~14 ms of a 100-cycle simulated run with zlib. Imported here, where
    # journals are written and read, not at `labctl` start-up.
    from zlib_ng.zlib_ng import crc32  # noqa: F401 - used by the journal writer and reader
except ImportError:  # pragma: no cover - zlib-ng is a dependency, but a missing wheel is no failure
    from zlib import crc32  # noqa: F401 - used by the journal writer and reader

# 2: sample blocks may be PACKED (store/journal_packing.py); a labctl that reads only
# format 1 then refuses the file clearly instead of skipping those blocks as damage.
FORMAT_VERSION = 2
MAGIC = 0x4C424A31  # b"1JBL" on disk
EVENT, SAMPLES, PACKED = 1, 2, 3
HEADER_TYPE = "journal_header"

_HEADER = struct.Struct("<IBII")
_COUNT = struct.Struct("<I")
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_MAX_PAYLOAD = 0xFFFF_FFFF
_CHUNK = 8 << 20  # bytes read at a time; bounds a reader's extra memory
# Split very large sample blocks so a record stays far below the u32 length
# limit and a streaming reader never needs more than a few chunks at once.
_MAX_ROWS_PER_RECORD = MAX_ROWS

_OUR_COLUMNS: list[tuple[str, np.dtype]] = list(SAMPLE_COLUMNS.items())
_OUR_ROW_BYTES = sum(d.itemsize for _, d in _OUR_COLUMNS)

_why = describe_os_error


def header_event(format_version: int = FORMAT_VERSION) -> dict[str, Any]:
    """The first record of every journal this labctl writes (`format_version`: an older
    one for a journal rewritten in that format, see journal.rewrite_journal)."""
    return {
        "type": HEADER_TYPE,
        "format_version": format_version,
        "sample_layout": "column-major",
        "byte_order": "little",
        "sample_dtype": [[name, dt.str] for name, dt in _OUR_COLUMNS],
    }


def _json_default(obj: Any) -> Any:
    # Instrument snapshots carry numpy scalars and arrays; keep them as numbers.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, enum.Enum):  # its value, as str and int enums are written (and orjson)
        return obj.value
    return str(obj)


# What json.dumps(event, allow_nan=True, default=..., separators=...) builds on every call,
# built once: the engine encodes a few events per step.
_ENCODER = json.JSONEncoder(allow_nan=True, default=_json_default, separators=(",", ":"))


def _make_fast_encoder() -> Callable[[Any], str]:
    """The C encoder behind _ENCODER.encode, made once and without the circular-reference
    check: the same text, ~20 % less time per event (JSONEncoder.encode builds the C
    encoder and a markers dict on every call). Events are trees the engine builds."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython without the _json accelerator
        return _ENCODER.encode
    try:
        encoder = make(None, _json_default, json.encoder.encode_basestring_ascii, None, ":",
                       ",", False, False, True)
        if encoder({"type": "probe", "x": [1.5, math.nan]}, 0)[0] != _ENCODER.encode(
                {"type": "probe", "x": [1.5, math.nan]}):
            return _ENCODER.encode
    except Exception:  # pragma: no cover - a future _json with another signature
        return _ENCODER.encode

    def encode(event: Any) -> str:
        return "".join(encoder(event, 0))

    return encode


_encode = _make_fast_encoder()

try:
    # orjson writes the engine's plain events ~10x faster than json (step_start and
    # step_end: ~11 us per step of a simulated run down to ~1 us). Where its text could
    # read back differently from json's it must not stand in: NaN and infinities become
    # null (caught below), and it refuses integers beyond 64 bits, numpy values and
    # non-string keys; subclasses of str/int/dict/list (an overridden items(), a str
    # enum), datetimes and dataclasses, which it would write its own way, are handed to
    # `_refuse` (the passthrough options). `json_bytes` then uses json, so every event reads
    # back (json.loads) as json writes it. Plain enums are written as their value by both.
    import orjson as _orjson

    _orjson_dumps = _orjson.dumps
    _ORJSON_OPTIONS = (_orjson.OPT_PASSTHROUGH_SUBCLASS | _orjson.OPT_PASSTHROUGH_DATETIME
                       | _orjson.OPT_PASSTHROUGH_DATACLASS)
except ImportError:  # pragma: no cover - orjson is a dependency, but a missing wheel is no failure
    _orjson_dumps = None


def _refuse(obj: Any) -> Any:
    raise TypeError(f"left to json: {type(obj).__name__}")


def json_bytes(value: Any) -> bytes:
    """`value` (an event) as compact JSON that json.loads reads back as it would read
    json.dumps(value, allow_nan=True, default=_json_default): by orjson where that holds."""
    if _orjson_dumps is not None:
        try:
            out = _orjson_dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
        except Exception:  # a big integer, a numpy value, a non-string key: json below
            pass
        else:
            # null is also what orjson makes of NaN and infinity: only an event without
            # null is certainly the same once read back.
            if b"null" not in out:
                return out
    return _encode(value).encode()


def encode_event(event: Mapping[str, Any]) -> bytes:
    # The engine's own events are plain dicts: skip the Mapping ABC check (a few per step).
    if type(event) is dict and type(event.get("type")) is str:
        return json_bytes(event)
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        raise ValueError(f"a journal event must be a dict with a 'type' string, got {event!r:.200}")
    return json_bytes(event)


class _Layout:
    """How a sample block's columns sit in a payload.

    Neighbouring columns of one dtype are read with a single `np.frombuffer`
    as a 2-D (columns x rows) array: a few numpy calls per block instead of
    one per column.
    """

    def __init__(self, columns: list[tuple[str, np.dtype]]):
        self.columns = columns
        self.dtypes = [d for _, d in columns]
        self.row_bytes = sum(d.itemsize for _, d in columns)
        self.runs: list[tuple[np.dtype, list[str]]] = []
        for name, dtype in columns:
            if self.runs and self.runs[-1][0] == dtype:
                self.runs[-1][1].append(name)
            else:
                self.runs.append((dtype, [name]))

    def rows(self, payload: memoryview) -> int | None:
        if len(payload) < _COUNT.size:
            return None
        (n,) = _COUNT.unpack_from(payload, 0)
        return n if len(payload) == _COUNT.size + n * self.row_bytes else None

    def packed(self, payload: memoryview) -> PackedBlock | None:
        """A PACKED record's block in these columns, or None if its size does not fit."""
        return PackedBlock.parse(payload, self.dtypes)

    def blocks(self, payload: memoryview, n: int) -> Iterator[tuple[np.dtype, list[str], np.ndarray]]:
        offset = _COUNT.size
        for dtype, names in self.runs:
            arr = np.frombuffer(payload, dtype=dtype, count=n * len(names), offset=offset)
            yield dtype, names, arr.reshape(len(names), n)
            offset += n * len(names) * dtype.itemsize

    def columns_of(self, payload: memoryview | PackedBlock, n: int) -> dict[str, np.ndarray]:
        """{name: 1-D array} in this labctl's column set (missing ones filled, extra
        dropped): views of the payload, except a packed block's constant columns."""
        if isinstance(payload, PackedBlock):
            found = dict(zip((c for c, _ in self.columns), payload.arrays(), strict=True))
        else:
            found = {name: arr[i] for _, names, arr in self.blocks(payload, n)
                     for i, name in enumerate(names)}
        if self.columns == _OUR_COLUMNS:
            return found
        return _ours(found, n)

    def values_of(self, payload: memoryview | PackedBlock, n: int
                  ) -> list[np.ndarray | np.generic]:
        """This labctl's columns in order: arrays, or one scalar for a packed block's
        constant column (for a caller that assigns them into arrays of its own)."""
        if not isinstance(payload, PackedBlock):
            return list(self.columns_of(payload, n).values())
        values = payload.values()
        if self.columns == _OUR_COLUMNS:
            return values
        found = dict(zip((c for c, _ in self.columns), values, strict=True))
        return [np.asarray(found[name]).astype(dtype) if name in found
                else (math.nan if dtype.kind == "f" else 0) for name, dtype in _OUR_COLUMNS]


def _ours(found: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """A foreign column set mapped onto ours (missing ones filled, extra dropped)."""
    out = {}
    for name, dtype in _OUR_COLUMNS:
        if name in found:
            out[name] = found[name].astype(dtype, copy=False)
        else:  # a column this file's writer did not have
            out[name] = np.full(n, math.nan if dtype.kind == "f" else 0, dtype=dtype)
    return out


_OUR_LAYOUT = _Layout(_OUR_COLUMNS)
