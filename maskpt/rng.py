"""Random generators that are pure functions of their key, never global state."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_rng(*parts) -> np.random.Generator:
    """A numpy generator seeded from a stable hash of `parts` (joined by \\x1f):
    the same key gives the same stream in any process, worker or order."""
    key = "\x1f".join(str(p) for p in parts)
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))
