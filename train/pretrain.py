"""Intermediate pre-training of BART on masked shards, with DeepSpeed ZeRO.

    deepspeed train/pretrain.py --config configs/pretrain/bart_base_paper.yaml [key=value ...]
    deepspeed --num_gpus 8 train/pretrain.py --config configs/pretrain/bart_base_paper.yaml --resume
    python train/pretrain.py --config configs/pretrain/tiny_cpu.yaml data.shards=[out/rand]

Source = `source_ids`, labels = `target_ids` (padding ignored in the loss),
for `full` and `span` targets alike. The global batch is reached as
micro-batch x gradient accumulation x world size, whatever the GPU count.
Checkpoints are DeepSpeed checkpoints (all ranks save) holding the data
stream's position; `--resume` continues from the latest with exactly the
examples not yet seen. At the end the model and tokenizer are exported with
`save_pretrained` to OUTPUT/hf for fine-tuning.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # `deepspeed train/pretrain.py` from a checkout

from train.model import ModelConfig, split_batch, zero_config  # noqa: E402


@dataclass(frozen=True)
class DataConfig:
    shards: tuple[str, ...] = ()
    """Shard folders (local paths or fsspec URLs) written by `maskpt preprocess`."""
    weights: tuple[float, ...] = ()
    """Mixing weight per folder (default: equal)."""
    shuffle: bool = True
    """Shuffle shards and rows from (seed, epoch)."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    verify: bool = True
    """Check every shard's size and sha256 against index.json before training."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    """Peak learning rate (the paper: 1e-4)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    betas: tuple[float, ...] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 500
    """Linear warm-up steps, then linear decay to 0 at total_steps."""
    grad_clip: float = 1.0
    """Gradient norm clipping (0 = off)."""


@dataclass(frozen=True)
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Model to start from and its tokenizer."""
    data: DataConfig = field(default_factory=DataConfig)
    """Shard folders and reading."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and schedule."""
    seed: int = 0
    """Seed for model init (fresh models), data order and dropout."""
    max_length: int = 128
    """Sequence length the shards were made with (checked against index.json)."""
    global_batch: int = 2048
    """Examples per optimizer step over all ranks (the paper: 2048)."""
    micro_batch: int = 32
    """Examples per rank per forward pass; accumulation = global / (micro x world)."""
    total_steps: int = 100_000
    """Optimizer steps (the paper: 100,000)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage (0, 1 or 2)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto = bf16 on GPU, fp32 on CPU."""
    output_dir: str = "runs/pretrain"
    """Checkpoints, logs and the exported model go here."""
    save_every: int = 1000
    """Save a checkpoint every N steps (0 = only at the end)."""
    log_every: int = 10
    """Log every N steps."""
    stop_after: int = 0
    """Stop this invocation after N steps, saving a checkpoint (0 = run to total_steps)."""
    export: bool = True
    """Export model + tokenizer with save_pretrained to output_dir/hf at the end."""
    debug_records: bool = False
    """Write consumed example ids and a parameter hash per rank (for tests)."""

    def __post_init__(self) -> None:
        if not self.data.shards:
            raise ValueError("data.shards: give at least one shard folder")
        if self.data.weights and len(self.data.weights) != len(self.data.shards):
            raise ValueError("data.weights: one weight per shard folder")
        for key in ("global_batch", "micro_batch", "total_steps", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.global_batch % self.micro_batch:
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch}"
            )
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"zero_stage must be 0, 1 or 2, got {self.zero_stage}")


def accumulation_steps(cfg: PretrainConfig, world: int) -> int:
    return split_batch(cfg.global_batch, cfg.micro_batch, world)


def deepspeed_config(cfg: PretrainConfig, world: int, bf16: bool) -> dict:
    return zero_config(cfg.global_batch, cfg.micro_batch, accumulation_steps(cfg, world),
                       cfg.optim.grad_clip, cfg.zero_stage, bf16)  # fmt: skip


def lr_lambda(cfg: PretrainConfig):
    def f(step: int) -> float:
        if step < cfg.optim.warmup_steps:
            return (step + 1) / cfg.optim.warmup_steps
        rest = max(1, cfg.total_steps - cfg.optim.warmup_steps)
        return max(0.0, 1.0 - (step - cfg.optim.warmup_steps) / rest)

    return f


def micro_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """Dropout seed of one micro-step: resumed runs replay the same randomness."""
    h = hashlib.blake2b(f"{seed}:{step}:{micro}:{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


class NonFiniteLoss(RuntimeError):
    pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="YAML file of PretrainConfig fields")
    ap.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    ap.add_argument(
        "--local_rank", type=int, default=None, help=argparse.SUPPRESS
    )  # deepspeed launcher
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    args = ap.parse_args(argv)

    from maskpt.config import load_config

    cfg = load_config(PretrainConfig, args.config, args.overrides)
    from train.loop import train

    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
