"""Masking policies. Importing this package registers the built-in ones.

from policies import registry
policy = registry.create("rand_v1", TokenizerInfo.from_tokenizer(tok))
results = policy.mask_batch(segments, seed=0)
"""

from policies import learned, orig, rand, ssm  # noqa: F401  (registration)
from policies.registry import create, get, names, register

__all__ = ["create", "get", "names", "register"]
