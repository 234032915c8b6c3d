"""The pre-training recipe's config: what `--config FILE`, the flags and
`KEY=VALUE` overrides of `maskpt pretrain` set (`maskpt pretrain --help`
lists every field with its docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from maskpt.core.config import require_at_least_one
from preprocess.remask import mixture_of
from train.model import ModelConfig
from train.monitor import check_reporters


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
    remask: Literal["per_epoch", "fixed"] = "per_epoch"
    """per_epoch: draw every example's mask anew in each epoch from its annotation (as
    fairseq's denoising data does); fixed: the masks stored in the shards (epoch 0) always."""
    policy: dict[str, float] | str = ""
    """With per_epoch: the policy to draw with (default: each folder's own), or a mixture
    picked per example, e.g. {ssm_v1: 0.5, orig_v1: 0.5}; refused for a folder that lacks
    the annotation it needs."""
    mask_seed: int | None = None
    """Seed of the per-epoch draws (default: each folder's masking seed, so epoch 0 is the
    stored rows)."""
    bucket: bool = False
    """Length bucketing: sort each global batch by stored row length before cutting it into
    micro-batches (less padding; the same examples per step), with the loss normalised over
    the global batch's label tokens so the update does not depend on the grouping."""
    pad_to_multiple_of: int = 1
    """Pad each micro-batch's length to a multiple of this (8 or 16 keep a compiled model to
    a few shapes)."""
    pad_labels_to_multiple_of: int = 0
    """Pad the labels (the decoder's length) to a multiple of this instead; 0: as
    pad_to_multiple_of. Span targets are a few tokens long: padding them as far as the
    inputs (say to 128, for one static compiled shape) multiplies the decoder's work."""
    prefetch_factor: int = 4
    """Micro-batches each DataLoader worker prepares ahead (with num_workers > 0)."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    """Peak learning rate (the paper: 1e-4)."""
    weight_decay: float = 0.01
    """AdamW weight decay. The optimizer and schedule are ours: the paper does not state them."""
    betas: tuple[float, ...] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 500
    """Linear warm-up steps, then linear decay to 0 at total_steps."""
    grad_clip: float = 1.0
    """Gradient norm clipping (0 = off)."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.eps <= 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay, warmup_steps and grad_clip must be >= 0, eps > 0")


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
    zero_stage: int | Literal["auto"] = "auto"
    """DeepSpeed ZeRO stage 0-3 (a `deepspeed:` config may set it too); auto = 0 in one
    process (nothing to partition; ZeRO's per-parameter hooks only cost), 2 with several."""
    compile: bool = False
    """Compile the model with torch.compile before DeepSpeed wraps it (`nn.Module.compile`:
    same parameter names, so checkpoints, export and resume are unchanged)."""
    compile_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of torch.compile, e.g. {mode: max-autotune} or {backend: aot_eager}
    (no code generation: what the CPU tests use)."""
    pad_vocab_to_multiple_of: int = 64
    """Train with the vocabulary padded to a multiple of this (an LM head of aligned
    width; the extra logits get a -1e9 bias, so the loss is unchanged); exports and
    `model/` keep the tokenizer's size. 1 = off."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """Your own DeepSpeed config (as in a ds_config.json: zero_optimization with offload,
    communication, monitors, ...), merged over the one the recipe computes; batch sizes in
    it must agree with global_batch / micro_batch. `--deepspeed_config FILE` does the same."""
    report_to: tuple[str, ...] = ("tensorboard",)
    """Experiment logging through DeepSpeed's monitor: tensorboard and/or csv (files under
    output_dir/monitor/), wandb, or none."""
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
    keep_last: int = 0
    """Keep only the newest N intact checkpoints (0 = keep all)."""
    export: bool = True
    """Export model + tokenizer with save_pretrained to output_dir/hf at the end."""
    export_every: bool = False
    """Also export output_dir/exports/step<N> at every checkpoint save (`maskpt export`
    makes one from any saved checkpoint later)."""
    debug_records: bool = False
    """Write consumed example ids and a parameter hash per rank (for tests)."""

    def __post_init__(self) -> None:
        if not self.data.shards:
            raise ValueError("data.shards: give at least one shard folder")
        if self.data.policy and self.data.remask != "per_epoch":
            raise ValueError(
                "data.policy: drawing with another policy needs data.remask: per_epoch"
            )

        check_reporters(self.report_to)
        if self.data.policy:
            mixture_of(self.data.policy)  # weights checked before anything starts
        if self.data.weights and len(self.data.weights) != len(self.data.shards):
            raise ValueError("data.weights: one weight per shard folder")
        require_at_least_one(self, "global_batch", "micro_batch", "total_steps", "log_every")
        if self.global_batch % self.micro_batch:
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch}"
            )
        if self.zero_stage not in (0, 1, 2, 3, "auto"):
            raise ValueError(f"zero_stage must be 0-3 or auto, got {self.zero_stage}")
        for key, value in (
            ("data.pad_to_multiple_of", self.data.pad_to_multiple_of),
            ("data.prefetch_factor", self.data.prefetch_factor),
            ("pad_vocab_to_multiple_of", self.pad_vocab_to_multiple_of),
        ):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        for key, value in (
            ("save_every", self.save_every),
            ("stop_after", self.stop_after),
            ("keep_last", self.keep_last),
            ("data.pad_labels_to_multiple_of", self.data.pad_labels_to_multiple_of),
        ):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")


def resolve_zero_stage(stage: int | str, world: int) -> int:
    """The ZeRO stage to run: `auto` is 0 in one process, 2 with several."""
    if stage == "auto":
        return 0 if world == 1 else 2
    return int(stage)


def lr_lambda(cfg: PretrainConfig):
    """Linear warm-up to the peak rate, then linear decay to 0 at total_steps."""

    def f(step: int) -> float:
        if step < cfg.optim.warmup_steps:
            return (step + 1) / cfg.optim.warmup_steps
        rest = max(1, cfg.total_steps - cfg.optim.warmup_steps)
        return max(0.0, 1.0 - (step - cfg.optim.warmup_steps) / rest)

    return f
