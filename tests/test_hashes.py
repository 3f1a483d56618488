"""labctl.hashes gives hashlib's digests (the procedure's sha256 in run.json, cache keys)."""

from __future__ import annotations

import hashlib

import pytest

from labctl.hashes import blake2b, sha256


@pytest.mark.parametrize("data", [b"", b"abc", b"Charge at 1C until 4.2 V\n" * 1000])
def test_the_digests_are_hashlibs(data):
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    ours, theirs = sha256(), hashlib.sha256()  # fed in pieces
    for chunk in (data[:7], b"\0", data[7:]):
        ours.update(chunk)
        theirs.update(chunk)
    assert ours.hexdigest() == theirs.hexdigest()
    assert blake2b(data, digest_size=16).digest() == hashlib.blake2b(data, digest_size=16).digest()


def test_a_published_sha256():
    # FIPS 180-2, appendix B.1: the SHA-256 of "abc".
    assert sha256(b"abc").hexdigest() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
