"""One-line notices on stderr about what labctl chose for the user (files found, code loaded).

Stdout stays for results (and `--json`); each distinct notice is printed once per process.
"""

from __future__ import annotations

import sys

_SHOWN: set[str] = set()


def notice(message: str) -> None:
    """Print `labctl: MESSAGE` on stderr, once per process (control characters escaped)."""
    if message in _SHOWN:
        return
    _SHOWN.add(message)
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in message)
    print(f"labctl: {clean}", file=sys.stderr)
