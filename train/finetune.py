"""Fine-tune a BART checkpoint on one downstream task and evaluate it.

    maskpt finetune --task nq --data-dir data/nq --model runs/pretrain/hf [key=value ...]
    python -m train.finetune --config configs/finetune/paper.yaml task=nq data_dir=data/nq lr=2e-5 seed=1
    deepspeed --num_gpus 4 train/finetune.py --config configs/finetune/paper.yaml task=nq data_dir=data/nq deepspeed=true

The paper's Table 5 settings are the defaults: label smoothing 0.1, dropout
0.1, weight decay 0.01, gradient clipping 0.1, warm-up 500 steps, beam 4,
generation length 1..20, validation during training with early stopping on
the dev metric. The LR / batch-size search and the seeds are `maskpt sweep`'s
job: one run here is one (task, checkpoint, lr, batch size, seed).

Writes to output_dir: config.json, log.jsonl (loss and dev metric),
predictions.dev.jsonl, predictions.test.jsonl (one object per example with
the prediction, gold answers and score), and metrics.json last — its presence
means the run finished.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `deepspeed train/finetune.py`


@dataclass(frozen=True)
class FinetuneConfig:
    task: str = ""
    """Task name: nq tqa wq ay2 zsre wow ropes wiqa quartz."""
    data_dir: str = ""
    """Folder with the task's release files (see `maskpt data download`)."""
    model: str = "facebook/bart-base"
    """Hugging Face BART folder (e.g. a pre-training export OUTPUT/hf) or hub name."""
    tokenizer: str = ""
    """Tokenizer folder or name; default: the model's."""
    output_dir: str = "runs/finetune"
    """Where config, log, predictions and metrics go."""
    seed: int = 0
    """Seed for data order and dropout."""
    lr: float = 1e-5
    """Peak learning rate (the paper searches 5e-6, 1e-5, 2e-5, 3e-5)."""
    batch_size: int = 32
    """Global batch size (the paper searches 32, 64, 128, 256)."""
    micro_batch: int = 0
    """Examples per forward pass per process; 0 = batch_size / world size."""
    max_epochs: int = 100
    """Upper bound on training epochs (early stopping usually ends sooner)."""
    max_steps: int = 0
    """Upper bound on optimizer steps (0 = none)."""
    eval_every: int = 0
    """Optimizer steps between dev evaluations; 0 = once per epoch."""
    patience: int = 5
    """Stop after this many dev evaluations without improvement (0 = never stop early)."""
    warmup_steps: int = 500
    """Linear warm-up steps; the rate is then constant (fairseq's default for fine-tuning)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 0.1
    """Gradient norm clipping."""
    label_smoothing: float = 0.1
    """Label smoothing of the token cross-entropy."""
    dropout: float = 0.1
    """Model dropout during fine-tuning."""
    num_beams: int = 4
    """Beam size for predictions."""
    min_gen_length: int = 1
    """Minimum generated tokens."""
    max_gen_length: int = 20
    """Maximum generated tokens."""
    max_source_length: int = 512
    """Source tokens kept (longer inputs are truncated)."""
    max_target_length: int = 128
    """Target tokens kept for training."""
    target_prefix_space: bool = False
    """Encode targets with a leading space, so an answer's first word gets the token it has
    inside a sentence (byte-level BPE: "Paris" and " Paris" are different tokens), as in
    pre-training spans. Off by default (the usual practice); `maskpt demo` turns it on."""
    train_fraction: float = 1.0
    """Fraction of the training split to use (the paper's low-resource runs: 0.001, 0.01)."""
    subset_seed: int = 0
    """Which fixed subset train_fraction picks (same for every checkpoint and seed)."""
    max_eval_examples: int = 0
    """Dev examples scored during training (0 = all); the final dev/test scores use all."""
    eval_batch: int = 64
    """Examples per generation batch."""
    deepspeed: bool = False
    """Train under DeepSpeed ZeRO (use the deepspeed launcher for several GPUs)."""
    zero_stage: int = 1
    """ZeRO stage when deepspeed is on (0, 1 or 2)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto = bf16 under DeepSpeed on GPU, fp32 otherwise."""
    save_model: bool = False
    """Also save the best model to output_dir/model (sweeps leave this off)."""

    def __post_init__(self) -> None:
        from train.tasks import TASKS

        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")
        if not self.data_dir:
            raise ValueError("data_dir: give the folder with the task's files")
        for key in ("batch_size", "max_epochs", "num_beams", "max_gen_length", "eval_batch"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.micro_batch < 0 or (self.micro_batch and self.batch_size % self.micro_batch):
            raise ValueError(
                f"micro_batch {self.micro_batch} must divide batch_size {self.batch_size}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"zero_stage must be 0, 1 or 2, got {self.zero_stage}")


def main(argv=None) -> int:
    from maskpt.config import recipe_config

    cfg = recipe_config(FinetuneConfig, argv, "maskpt finetune", __doc__,
                        ("task", "data_dir", "model", "output_dir", "train_fraction"))  # fmt: skip
    from train.ft_loop import finetune

    metrics = finetune(cfg)
    if metrics is not None:
        print(
            f"{cfg.task}: dev {metrics['metric']} {metrics['dev']:.4f}, "
            f"test {metrics['test']:.4f} (best step {metrics['best_step']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
