"""Every rule that turns a seed into a random stream, in one place.

All streams are pure functions of their key (never global state), so the
same key gives the same numbers in any process, worker or order:

- `stable_rng(*parts)`: a numpy generator (PCG64) seeded from a blake2b hash
  of the parts joined by \\x1f; masking (one per segment: seed, policy,
  segment id) and the pre-training stream (seed, "shards" | "rows", epoch...)
  use it, so it must never change (shards depend on it byte for byte).
- `stable_seed(*parts)`: a 63-bit integer from the same kind of hash, for
  `torch.manual_seed` (dropout) and `torch.Generator`s.
- `stable_fraction(*parts)`: a float in [0, 1), for deterministic sampling.
- `micro_seed(seed, step, micro, rank)`: the dropout seed of one
  pre-training micro-step, so a resumed run replays the same randomness.
- `python_random(*parts)`: a `random.Random` seeded by the parts joined by
  "-" (the synthetic world's generator).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def _digest(parts, size: int) -> bytes:
    key = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(key.encode(), digest_size=size).digest()


def stable_rng(*parts) -> np.random.Generator:
    """A numpy generator seeded from a stable hash of `parts`."""
    return np.random.Generator(np.random.PCG64(int.from_bytes(_digest(parts, 16), "little")))


def stable_seed(*parts) -> int:
    """A non-negative 63-bit integer seed from a stable hash of `parts`."""
    return int.from_bytes(_digest(parts, 8), "little") >> 1


def stable_fraction(*parts) -> float:
    """A number in [0, 1) from a stable hash of `parts` (uniform over keys)."""
    return int.from_bytes(_digest(parts, 8), "big") / 2**64


def micro_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """Dropout seed of one micro-step: resumed runs replay the same randomness."""
    return stable_seed("dropout", seed, step, micro, rank)


def python_random(*parts) -> random.Random:
    """A `random.Random` seeded by the parts joined with "-"."""
    return random.Random("-".join(str(p) for p in parts))
