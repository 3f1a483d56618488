"""numpy columns to Arrow arrays without pandas.

`pyarrow.array()` imports pandas on its first call (to check for pandas types),
which costs ~0.2 s: more than a whole simulated quickstart run. Numeric columns
are wrapped zero-copy with `Array.from_buffers`, strings built from an offsets
buffer; anything else falls back to `pyarrow.array`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_NUMERIC = {np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32, np.int16,
                                  np.int8, np.uint64, np.uint32, np.uint16, np.uint8)}


def to_arrow(values: Any, type: pa.DataType | None = None) -> pa.Array:
    """A 1-D numpy array (numeric, or object/str holding strings) as an Arrow array."""
    arr = np.asarray(values)
    if arr.dtype in _NUMERIC and arr.ndim == 1:
        arr = np.ascontiguousarray(arr)
        if type is not None and type != pa.from_numpy_dtype(arr.dtype):
            arr = arr.astype(type.to_pandas_dtype())
        return pa.Array.from_buffers(pa.from_numpy_dtype(arr.dtype), len(arr),
                                     [None, pa.py_buffer(arr)])
    if (arr.dtype == object or arr.dtype.kind == "U") and arr.ndim == 1 \
            and all(isinstance(v, str) for v in arr.tolist()):
        encoded = [v.encode("utf-8") for v in arr.tolist()]
        total = sum(len(e) for e in encoded)
        # string (32-bit offsets) as pandas writes it; large_string only past 2 GiB. No
        # cast: that would import pyarrow.compute (~0.1 s).
        kind, offset_type = (pa.string(), np.int32) if total < 2**31 else (pa.large_string(),
                                                                           np.int64)
        offsets = np.zeros(len(encoded) + 1, dtype=offset_type)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(kind, len(encoded),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    return pa.array(arr, type=type)
