"""`maskpt demo`'s config: the synthetic world, the rows, the training lengths,
and the `--size` presets. Read by `maskpt demo` and by `maskpt study` with
`configs/study/demo.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from maskpt.core.config import (
    ConfigError,
    build_dataclass,
    merge,
    parse_overrides,
    require_at_least_one,
)
from maskpt.world import ATTRIBUTES, WorldConfig

POLICIES = ("orig_v1", "rand_v1", "ssm_v1", "sup_v1", "meta_v1")


def _tiny_bart() -> dict:
    return {
        "d_model": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 512,
        "decoder_ffn_dim": 512,
        "max_position_embeddings": 80,
        "dropout": 0.0,
        "attention_dropout": 0.0,
    }


@dataclass(frozen=True)
class DemoConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    """The synthetic world (people, repeats, splits, seed)."""
    policies: tuple[str, ...] = POLICIES
    """Policies for intermediate pre-training, one row each."""
    seed: int = 0
    """Seed for masking, model initialisation and data order."""
    pretrain_seeds: int = 3
    """Intermediate pre-training runs per row (seeds seed..seed+N-1)."""
    policy_seeds: int = 2
    """Training seeds per learned policy (seeds seed..seed+N-1): pre-training run k of a learned
    row uses the policy of seed k mod N, so a row's ± covers policy training too."""
    seeds: int = 1
    """Fine-tuning seeds per pre-trained model; a row's ± is over all its runs."""
    transfer: tuple[str, ...] = ("birth_year", "birthplace")
    """Attributes whose questions the transfer rows' learned policies train on; their
    column is the other attributes' questions (empty: no transfer rows)."""
    vocab_size: int = 2000
    """Tokenizer vocabulary."""
    model: dict[str, Any] = field(default_factory=_tiny_bart)
    """BartConfig fields of the model trained from scratch (over the tiny default's)."""
    max_length: int = 64
    """Segment length in tokens (an article is one segment)."""
    general_steps: int = 1000
    """General pre-training steps (orig_v1 on the background people)."""
    steps: int = 800
    """Intermediate pre-training steps per policy."""
    batch: int = 64
    """Pre-training batch (sequences)."""
    lr: float = 5e-4
    """Pre-training peak learning rate (AdamW, linear warm-up and decay)."""
    warmup: int = 100
    """Pre-training warm-up steps."""
    remask: Literal["per_epoch", "fixed"] = "per_epoch"
    """Pre-training masks: per_epoch (drawn anew each epoch, as fairseq does) or fixed
    (every epoch trains on the shards' stored epoch-0 masks)."""
    policy_steps: int = 300
    """Training steps of the supervised policy."""
    meta_steps: int = 600
    """Meta steps of the meta-learned policy (batch 8; every other setting the trainer's
    default, as `bench/meta_signal.py` measures it)."""
    ft_steps: int = 200
    """Fine-tuning steps."""
    ft_lr: float = 3e-4
    """Fine-tuning learning rate."""
    ft_batch: int = 32
    """Fine-tuning batch."""
    analysis_sample: float = 1.0
    """Share of each policy's shards that `analyze` reads."""

    def __post_init__(self):
        object.__setattr__(self, "model", {**_tiny_bart(), **self.model})
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            raise ConfigError(f"policies: {unknown or '[]'} not among {', '.join(POLICIES)}")
        require_at_least_one(
            self,
            "seeds",
            "pretrain_seeds",
            "policy_seeds",
            "general_steps",
            "steps",
            "batch",
            "ft_steps",
            "ft_batch",
            "policy_steps",
            "meta_steps",
            "vocab_size",
            "max_length",
        )

        bad = [a for a in self.transfer if a not in ATTRIBUTES]
        if bad or len(set(self.transfer)) == len(ATTRIBUTES):
            raise ConfigError(
                f"transfer: some (not all) of {', '.join(ATTRIBUTES)}, got {list(self.transfer)}"
            )
        if self.batch % 2:
            raise ConfigError(f"batch must be even (two micro-batches), got {self.batch}")


SIZES: dict[str, list[str]] = {
    "tiny": [  # CI: a few minutes; the numbers mean nothing
        "world.people=16",
        "world.background_people=16",
        "world.repeats=2",
        "pretrain_seeds=2",
        "general_steps=30",
        "steps=20",
        "batch=16",
        "warmup=5",
        "policy_steps=10",
        "meta_steps=10",
        "ft_steps=20",
        "ft_batch=16",
        "vocab_size=600",
    ],
    "quick": [  # about 8 min on 2 CPU cores: none vs ssm only, the paper's first finding
        "policies=[ssm_v1]",
        "transfer=[]",
        "general_steps=600",
        "steps=400",
    ],
    "default": [],  # about 2 h on 2 CPU cores (RESULTS.md)
    "large": [  # a GPU or a few hours of CPU: more people, a bigger model, longer runs
        "world.people=400",
        "world.background_people=400",
        "world.repeats=12",
        "pretrain_seeds=5",
        "general_steps=6000",
        "steps=6000",
        "ft_steps=600",
        "vocab_size=4000",
        "model.d_model=256",
        "model.encoder_ffn_dim=1024",
        "model.decoder_ffn_dim=1024",
        "model.encoder_layers=4",
        "model.decoder_layers=4",
    ],
}


def demo_from(data: dict, where: str = "demo") -> DemoConfig:
    """A DemoConfig from a mapping of its fields, where `size` (one of SIZES) applies
    that preset first, as `maskpt demo --size` does."""
    data = dict(data)
    size = data.pop("size", "default")
    if size not in SIZES:
        raise ConfigError(f"{where}: size {size!r}: one of {', '.join(SIZES)}")
    return build_dataclass(
        DemoConfig, merge(parse_overrides(SIZES[size]), data), where=where, prefix=""
    )
