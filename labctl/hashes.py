"""BLAKE2b and SHA-256 for labctl's digests, without importing `hashlib`.

`hashlib` loads OpenSSL (`_hashlib`) for all its algorithms as it is imported: ~3 ms of
every `labctl run` (measured with -X importtime), which needs only BLAKE2b (the YAML
parse cache, the ceilings verdicts, the simulator's model key) and SHA-256 of a few
texts (the procedure's `sha256` in run.json). CPython builds both in (`_blake2`, and
`_sha256`, named `_sha2` from 3.12): the same digests, hashlib's own fallbacks. Where
neither is there, hashlib's.
"""

from __future__ import annotations

try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another Python implementation
    from hashlib import blake2b

try:
    from _sha256 import sha256  # CPython 3.11
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha2 import sha256  # CPython 3.12 and later
    except ImportError:
        from hashlib import sha256

__all__ = ["blake2b", "sha256"]
