"""Drawing a shard row's mask again, for any epoch, from its stored annotation.

A folder annotated once on the preprocessing workers serves every epoch and
several policies: the draw is a pure function of (row, policy config, seed,
epoch) — the same code `maskpt mask` and preprocessing run (`Policy.draw`) —
so the trainer's loader, `maskpt inspect --epoch` and `maskpt analyze
--epoch` give the same masks in any process. A policy whose draw needs an
annotation kind the folder lacks is refused by name; every folder has word
and sentence starts, so `orig_v1` and `rand_v1` can be drawn from any of
them. A mixture (`{"ssm_v1": 0.5, "orig_v1": 0.5}`) picks a policy per
example, from a stable hash of (seed, epoch, row id).
"""

from __future__ import annotations

import policies as registry
from maskpt.core.errors import UserError
from maskpt.core.seeding import stable_fraction
from preprocess.index import ShardIndex
from preprocess.shards import annotation_of, drawn_fields, segment_of


class PolicyNotServed(UserError, ValueError):
    """A policy that needs an annotation the shard folder does not have."""


def mixture_of(spec) -> dict[str, float]:
    """`"orig_v1"` or `{"ssm_v1": 0.5, "orig_v1": 0.5}` -> {name: weight}, checked."""
    mix = {spec: 1.0} if isinstance(spec, str) else dict(spec)
    squeezed = [k for k, w in mix.items() if w is None and ":" in str(k)]
    if squeezed:  # YAML reads {ssm_v1:0.5} as the key "ssm_v1:0.5" with no value
        raise UserError(
            f"data.policy: {squeezed[0]!r} has no weight; write a space after "
            "each colon, e.g. '{ssm_v1: 0.5, rand_v1: 0.5}'"
        )
    if not mix or any(not isinstance(w, int | float) or w <= 0 for w in mix.values()):
        raise UserError(f"data.policy: give a policy or policies with weights > 0, got {spec!r}")
    return mix


class Remasker:
    """Draws rows of one shard folder anew: its own policy by default, or the
    policy or mixture `spec`, with `seed` (default: the folder's own)."""

    def __init__(self, index: ShardIndex, tokenizer_info, spec=None, seed: int | None = None):
        self.seed = index.seed if seed is None else int(seed)
        mix = mixture_of(spec or index.policy.name)
        have = set(index.annotations)
        self.policies, self.cum = [], []
        total = sum(mix.values())
        for name, weight in mix.items():
            cls = registry.get(name)
            missing = sorted(set(cls.needs) - have)
            if missing:
                raise PolicyNotServed(
                    f"{index.folder}: policy {name} needs {', '.join(missing)} annotations; the "
                    f"folder has {', '.join(sorted(have))} (annotated by {index.policy.name}). "
                    f"Preprocess with {name} for it."
                )
            config = index.policy.config if name == index.policy.name else None
            self.policies.append(registry.create(name, tokenizer_info, config, annotating=False))
            self.cum.append((self.cum[-1] if self.cum else 0.0) + weight / total)
        self.cum[-1] = 1.0

    def policy_for(self, row_id: str, epoch: int):
        """The policy a row is drawn with in `epoch` (one, or a seeded pick)."""
        if len(self.policies) == 1:
            return self.policies[0]
        u = stable_fraction(self.seed, "policy-mix", epoch, row_id)
        return self.policies[next(k for k, c in enumerate(self.cum) if u < c)]

    def draw(self, row: dict, epoch: int) -> dict:
        """The row with `input_ids`, `labels` and `masked` drawn for `epoch`."""
        policy = self.policy_for(row["id"], epoch)
        drawn = policy.draw(segment_of(row), annotation_of(row), self.seed, epoch)
        return {**row, **drawn_fields(drawn)}
