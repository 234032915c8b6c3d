"""Fine-tune a BART checkpoint on one downstream task and evaluate it, with
transformers' `Seq2SeqTrainer`.

    maskpt finetune --task nq --data-dir data/nq --model runs/pretrain/hf lr=2e-5 seed=1
    maskpt finetune --config configs/finetune/paper.yaml task=nq data_dir=data/nq --train-fraction 0.01
    deepspeed --num_gpus 4 train/finetune.py --config configs/finetune/paper.yaml task=nq data_dir=data/nq deepspeed=true
    deepspeed --num_gpus 4 train/finetune.py ... --deepspeed ds_zero3.json trainer_args.activation_checkpointing=true

The paper's Table 5 settings are the defaults and become
`Seq2SeqTrainingArguments`: label smoothing 0.1 (`label_smoothing_factor`),
dropout 0.1, weight decay 0.01, gradient clipping 0.1 (`max_grad_norm`),
500 warm-up steps then a constant rate (`constant_with_warmup`), beam 4 and
1-20 generated tokens (`predict_with_generate` with a pinned
`GenerationConfig`: length penalty 1.0, no n-gram blocking, whatever the
checkpoint's own generation defaults say). The dev metric is computed every
`eval_every_epochs` epochs (or `eval_every` steps); the best dev checkpoint
of the whole run is loaded at the end (`load_best_model_at_end`); no early
stopping unless `patience` > 0 (the paper has none). KILT tasks select and
report on the full dev set, as the paper's Table 2 (`kilt_eval`). The LR /
batch-size search and the seeds are `maskpt sweep`'s job: one run here is
one (task, checkpoint, lr, batch size, seed).

Writes to output_dir: config.json, log.jsonl (every Trainer log line; dev
evaluations carry `dev`), predictions.dev.jsonl and predictions.test.jsonl
(one object per example: prediction, gold answers, score), TensorBoard
events under runs/ (`report_to`), the Trainer's checkpoint-* folders while
it runs (an interrupted run resumes from them; removed once it finishes
unless `keep_checkpoints`), and metrics.json last: its presence means the
run finished, and such a folder is never overwritten unless `overwrite`.

Kept by hand, on purpose: a NaN or infinite training loss stops every rank
at once with the step in the message (the Trainer would only filter it from
the logs), and evaluation sets are sorted by length so that beam search pads
little (predictions are written back in example order).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError, read_yaml_mapping, require_at_least_one, to_dict
from maskpt.core.errors import UserError
from maskpt.core.hub import check_local_or_hub
from maskpt.core.interrupts import Interrupted, stop_requests
from maskpt.core.io import claim_spec, write_json_atomic
from train.distributed import (
    all_reduce,
    check_finite,
    check_jit_locks,
    finish_distributed,
    launched_world,
    name_cpu_accelerator,
    single_process_env,
    split_batch,
)
from train.model import export_pretrained, load_pretrained
from train.monitor import check_reporters, deepspeed_config
from train.tasks import TASKS, TaskDataError, get_task, load_split


@dataclass(frozen=True)
class FinetuneConfig:
    task: str = ""
    """Task name: nq tqa wq ay2 zsre wow ropes wiqa quartz (or synth, the demo's)."""
    data_dir: str = ""
    """Folder with the task's release files (see `maskpt data download`)."""
    model: str = "facebook/bart-base"
    """Hugging Face BART folder (e.g. a pre-training export OUTPUT/hf) or hub name."""
    tokenizer: str = ""
    """Tokenizer folder or name; default: the model's."""
    output_dir: str = "runs/finetune"
    """Where config, log, predictions, checkpoints and metrics go."""
    seed: int = 0
    """Seed for data order, dropout and initialisation (`TrainingArguments.seed`)."""
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
    """Optimizer steps between dev evaluations (and checkpoints); 0 = every eval_every_epochs."""
    eval_every_epochs: int = 1
    """With eval_every 0: epochs between dev evaluations (and checkpoints); the last epoch
    is always evaluated. Table 5 validates every 2 or 5 epochs depending on the task."""
    patience: int = 0
    """Stop after this many dev evaluations without improvement (0 = never; the paper has
    no early stopping: the best dev checkpoint of the whole run is kept)."""
    kilt_eval: Literal["full_dev", "halves"] = "full_dev"
    """KILT tasks: full_dev = select and report on the full dev set (the paper's Table 2);
    halves = select on the first half of dev, report on the second."""
    warmup_steps: int = 500
    """Linear warm-up steps; the rate is then constant (fairseq's default for fine-tuning)."""
    weight_decay: float = 0.01
    """AdamW weight decay (the Trainer's: not on biases and LayerNorm weights)."""
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
    length_penalty: float = 1.0
    """Beam search length penalty (Table 5: 1.0), whatever the checkpoint's defaults say."""
    no_repeat_ngram_size: int = 0
    """Block repeated n-grams of this size in generation (0 = off), whatever the checkpoint says."""
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
    """Examples per generation batch, per process."""
    log_every: int = 10
    """Optimizer steps between log lines (log.jsonl, TensorBoard, `report_to`)."""
    report_to: tuple[str, ...] = ("tensorboard",)
    """Where the Trainer logs: tensorboard (events under output_dir/runs/), wandb, ... or none."""
    deepspeed: bool | str = False
    """Train under DeepSpeed ZeRO (use the deepspeed launcher for several GPUs): true for the
    built-in config, or a DeepSpeed JSON file (`--deepspeed ds.json`, as with HF's Trainer)
    merged key by key over it. Batch sizes in the file must agree with batch_size and
    micro_batch (or be "auto"); ZeRO-3, offload, optimizer settings come from it."""
    zero_stage: int = 1
    """ZeRO stage of the built-in config (0, 1 or 2)."""
    trainer_args: dict[str, Any] = field(default_factory=dict)
    """Further `Seq2SeqTrainingArguments` passed as they are (activation_checkpointing, optim,
    push_to_hub, hub_model_id, dataloader_num_workers, ...); names the recipe sets from
    the fields above are refused with the field to use."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto = bf16 under DeepSpeed on GPU, fp32 otherwise."""
    save_model: bool = False
    """Also save the best model to output_dir/model (sweeps leave this off)."""
    keep_checkpoints: bool = False
    """Keep the Trainer's checkpoint-* folders after the run finished."""
    resume: bool = True
    """Continue an unfinished run in output_dir from its newest checkpoint-* (same config)."""
    overwrite: bool = False
    """Replace a finished run (one with metrics.json) in output_dir instead of refusing."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")
        if "wandb" in self.report_to:  # the Trainer's own reporters: only this one checked here
            check_reporters(("wandb",))
        if not self.data_dir:
            raise ValueError("data_dir: give the folder with the task's files")
        require_at_least_one(
            self,
            "batch_size",
            "max_epochs",
            "num_beams",
            "max_gen_length",
            "eval_batch",
            "log_every",
        )
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
        if isinstance(self.deepspeed, str):
            read_yaml_mapping(self.deepspeed)  # a missing or broken file, named now (JSON is YAML)
        check_trainer_args(self.trainer_args)
        if self.eval_every_epochs < 1:
            raise ValueError(f"eval_every_epochs must be >= 1, got {self.eval_every_epochs}")
        for key in (
            "max_steps",
            "eval_every",
            "patience",
            "warmup_steps",
            "max_eval_examples",
            "no_repeat_ngram_size",
        ):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


RECIPE_ARGUMENTS = {
    "output_dir": "output_dir",
    "seed": "seed",
    "data_seed": "seed",
    "per_device_train_batch_size": "micro_batch",
    "gradient_accumulation_steps": "batch_size",
    "per_device_eval_batch_size": "eval_batch",
    "learning_rate": "lr",
    "lr_scheduler_type": "warmup_steps",
    "warmup_steps": "warmup_steps",
    "weight_decay": "weight_decay",
    "max_grad_norm": "grad_clip",
    "label_smoothing_factor": "label_smoothing",
    "num_train_epochs": "max_epochs",
    "max_steps": "max_steps",
    "eval_strategy": "eval_every",
    "save_strategy": "eval_every",
    "eval_steps": "eval_every",
    "save_steps": "eval_every",
    "save_total_limit": "keep_checkpoints",
    "load_best_model_at_end": "patience",
    "metric_for_best_model": "task",
    "greater_is_better": "task",
    "predict_with_generate": "num_beams",
    "logging_steps": "log_every",
    "report_to": "report_to",
    "bf16": "precision",
    "deepspeed": "deepspeed",
    "use_cpu": "the device",
    "log_level": "the recipe",
    "remove_unused_columns": "the recipe",
}
"""`Seq2SeqTrainingArguments` the recipe sets -> the config field that decides each."""


def check_trainer_args(extra: dict) -> None:
    """`trainer_args` names `Seq2SeqTrainingArguments` has and the recipe does not set."""

    from transformers import Seq2SeqTrainingArguments

    known = {f.name for f in fields(Seq2SeqTrainingArguments) if f.init}
    for key in extra:
        if key in RECIPE_ARGUMENTS:
            raise ConfigError(
                f"trainer_args.{key}: set by the recipe from "
                f"{RECIPE_ARGUMENTS[key]}; set that instead"
            )
        if key not in known:
            raise ConfigError(f"trainer_args.{key}: not a Seq2SeqTrainingArguments field")


# --- phase 1: the run folder and the data ------------------------------------------------

RESULT = "metrics.json"


def checkpoints(out: Path) -> list[Path]:
    """The Trainer's complete checkpoints in `out` (trainer_state.json written), oldest first."""
    found = [p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def resume_from(cfg: FinetuneConfig, out: Path) -> str | None:
    """The checkpoint an unfinished run in `out` continues from (every rank
    asks); a torn newer one (a crash while saving) is passed over."""
    if not cfg.resume or (out / RESULT).exists():
        return None
    found = checkpoints(out)
    return str(found[-1]) if found else None


def claim_output(cfg: FinetuneConfig, out: Path) -> None:
    """Refuse a finished run (unless `overwrite`, which clears it) or an
    unfinished one made with another config; record this run's config."""

    ours = (out / "config.json").exists() or (out / RESULT).exists()
    launcher = {"config.yaml", "log.txt"}  # what `maskpt sweep` writes before a run starts
    others = sorted(p.name for p in out.iterdir() if p.name not in launcher) if out.is_dir() else []
    if not ours and others:  # would be written into and mixed
        found = ", ".join(others[:5])
        raise UserError(
            f"{out} is not empty and holds no fine-tuning run ({found}); give a new "
            "or empty output_dir"
        )
    if (out / RESULT).exists():
        if not cfg.overwrite:
            raise UserError(
                f"{out} holds a finished run ({RESULT}); pass overwrite=true to replace it, "
                "or use another output_dir"
            )
        for old in (
            out / RESULT,
            out / "config.json",
            out / "log.jsonl",
            *out.glob("checkpoint-*"),
        ):
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink(missing_ok=True)
    same = {k: v for k, v in to_dict(cfg).items() if k not in ("resume", "overwrite")}
    claim_spec(out / "config.json", same, f"{out} holds another fine-tuning run")
    complete = set(checkpoints(out))
    for torn in out.glob("checkpoint-*"):  # interrupted while saving: never resumed from
        if torn not in complete:
            shutil.rmtree(torn, ignore_errors=True)


def _unclaim(out: Path, made_folder: bool, made_config: bool) -> None:
    """Undo `claim_output` for a run that stopped before its first step."""
    if made_config:
        (out / "config.json").unlink(missing_ok=True)
    if made_folder and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def load_data(cfg: FinetuneConfig, tok, limit: int):
    """(examples, encoded) per split; the train split cut to `train_fraction`."""
    from train.seq2seq import encode, subset

    splits = {
        s: load_split(cfg.task, cfg.data_dir, s, cfg.kilt_eval) for s in ("train", "dev", "test")
    }
    splits["train"] = subset(splits["train"], cfg.train_fraction, cfg.subset_seed)
    for split, examples in splits.items():
        if not examples:
            raise TaskDataError(f"{cfg.task}: the {split} split in {cfg.data_dir} is empty")
    src, tgt = min(cfg.max_source_length, limit), min(cfg.max_target_length, limit)
    encoded = {s: encode(tok, ex, src, tgt, cfg.target_prefix_space) for s, ex in splits.items()}
    return splits, encoded


# --- phase 2: the model and the Trainer's arguments ----------------------------------------


class _PinnedLengths:
    """A logging filter for generate()'s "Both `max_new_tokens` and `max_length`
    seem to have been set" (and its min_ twin), printed at every generation
    batch: the recipe pins max/min_new_tokens, which take precedence, and
    Seq2SeqTrainer needs max_length set to pad the predictions."""

    def filter(self, record) -> bool:
        return "seem to have been set" not in record.getMessage()


def quiet_pinned_lengths() -> None:
    log = logging.getLogger("transformers.generation.utils")
    if not any(isinstance(f, _PinnedLengths) for f in log.filters):
        log.addFilter(_PinnedLengths())


def load_model(cfg: FinetuneConfig):
    from transformers import AutoTokenizer, GenerationConfig

    check_local_or_hub(cfg.model, "model")  # named as the model, not as its tokenizer
    if cfg.tokenizer:
        check_local_or_hub(cfg.tokenizer, "tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    except OSError as exc:
        raise UserError(
            f"could not load the tokenizer of {cfg.tokenizer or cfg.model!r}: {exc}"
        ) from exc
    model = load_pretrained(cfg.model, dropout=cfg.dropout, attention_dropout=cfg.dropout)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=model.config.decoder_start_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        forced_bos_token_id=tok.bos_token_id,
        forced_eos_token_id=tok.eos_token_id,
        num_beams=cfg.num_beams,
        min_new_tokens=cfg.min_gen_length,
        max_new_tokens=cfg.max_gen_length,
        early_stopping=cfg.num_beams > 1,
        length_penalty=cfg.length_penalty,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
    )
    quiet_pinned_lengths()
    return tok, model


def training_arguments(cfg: FinetuneConfig, metric: str, world: int):
    """The recipe's `Seq2SeqTrainingArguments`, with the user's `trainer_args`."""
    from transformers import Seq2SeqTrainingArguments

    return Seq2SeqTrainingArguments(**recipe_arguments(cfg, metric, world), **cfg.trainer_args)


def recipe_arguments(cfg: FinetuneConfig, metric: str, world: int) -> dict:
    """What the recipe sets of `Seq2SeqTrainingArguments` (`RECIPE_ARGUMENTS`)."""
    import torch

    micro = cfg.micro_batch or max(1, cfg.batch_size // world)
    accum = split_batch(cfg.batch_size, micro, world, names=("batch_size", "micro_batch"))
    cuda = torch.cuda.is_available()
    use_ds = bool(cfg.deepspeed)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and use_ds and cuda)
    ds = None
    if use_ds and not cuda:
        if world > 1:
            raise UserError(
                "deepspeed=true on CPU works in one process only (accelerate runs DeepSpeed on "
                "accelerators); for several CPU ranks leave deepspeed off (DDP over gloo)"
            )
        single_process_env()  # the environment DeepSpeed expects
    if use_ds:
        check_jit_locks()  # DeepSpeed's start would wait forever on a killed build's lock
        ds = {
            "train_batch_size": cfg.batch_size,
            "train_micro_batch_size_per_gpu": micro,
            "gradient_accumulation_steps": accum,
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": cfg.zero_stage},
            "bf16": {"enabled": bf16},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        }
        if isinstance(cfg.deepspeed, str):
            user = read_yaml_mapping(cfg.deepspeed)
            ds = deepspeed_config(ds, user, cfg.deepspeed, "batch_size, micro_batch")
    when = "steps" if cfg.eval_every else "epoch"
    return dict(
        output_dir=cfg.output_dir,
        seed=cfg.seed,
        data_seed=cfg.seed,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        per_device_eval_batch_size=cfg.eval_batch,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.grad_clip,
        label_smoothing_factor=cfg.label_smoothing,
        num_train_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps or -1,
        eval_strategy=when,
        save_strategy=when,
        eval_steps=cfg.eval_every or None,
        save_steps=cfg.eval_every or None,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        predict_with_generate=True,
        logging_steps=cfg.log_every,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        bf16=bf16,
        deepspeed=ds,
        use_cpu=not cuda,
        log_level="warning",
        remove_unused_columns=False,
    )


# --- phase 3: the step guard, logging and scoring -------------------------------------------


def _trainer_class():
    from transformers import Seq2SeqTrainer

    class Trainer(Seq2SeqTrainer):
        """Seq2SeqTrainer whose training step stops every rank on a non-finite
        loss, and whose evaluation returns each example's index in place of
        labels (gathered across ranks with the generated ids)."""

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            check_finite(loss, f"at step {self.state.global_step + 1}")
            return loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **kw):
            index = inputs.pop("example_index")
            loss, tokens, _ = super().prediction_step(
                model, inputs, prediction_loss_only, ignore_keys, **kw
            )
            return loss, tokens, index

    return Trainer


def _callbacks(cfg: FinetuneConfig, out: Path, scorer, timer: dict, stop):
    from transformers import EarlyStoppingCallback, TrainerCallback

    metric = scorer.metric

    class Log(TrainerCallback):
        """log.jsonl on the main process; times training (optimizer steps with
        their data loading, without logging, evaluation and checkpoints);
        keeps each full-dev evaluation's records by step."""

        def _mark(self, *args, **kw):
            timer["mark"] = time.perf_counter()

        on_train_begin = on_save = _mark

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            timer["train_s"] += now - timer["mark"]
            timer["steps"] += 1
            timer["mark"] = now
            if all_reduce([1.0 if stop.requested else 0.0])[0] > 0:  # every rank stops
                control.should_save = control.should_training_stop = True

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if scorer.full_dev:
                scorer.by_step[state.global_step] = (metrics[f"eval_{metric}"], scorer.records)
            self._mark()

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs:
                rec = {"step": state.global_step, **logs}
                if f"eval_{metric}" in logs:
                    rec["dev"] = logs[f"eval_{metric}"]
                with (out / "log.jsonl").open("a") as f:
                    f.write(json.dumps(rec) + "\n")
            self._mark()

    class EveryNEpochs(TrainerCallback):
        """Evaluate and save at every eval_every_epochs-th epoch end and the last."""

        def on_epoch_end(self, args, state, control, **kw):
            epoch = round(state.epoch or 0)
            last = epoch >= args.num_train_epochs or (
                args.max_steps > 0 and state.global_step >= args.max_steps
            )
            if epoch % cfg.eval_every_epochs and not last:
                control.should_evaluate = control.should_save = False

    extra = [EveryNEpochs()] if cfg.eval_every == 0 and cfg.eval_every_epochs > 1 else []
    return [Log(), *extra] + ([EarlyStoppingCallback(cfg.patience)] if cfg.patience else [])


class Scorer:
    """`compute_metrics` for one evaluation set: decode the generated ids,
    put them in example order (by the index each carries), score them;
    keeps the records."""

    def __init__(self, tok, metric: str, full_dev: bool):
        self.tok, self.metric, self.full_dev = tok, metric, full_dev
        self.examples, self.records = [], []
        self.by_step: dict[int, tuple[float, list[dict]]] = {}

    def use(self, examples) -> None:
        self.examples = examples

    def __call__(self, pred) -> dict:
        import numpy as np

        from train.seq2seq import score

        ids = np.where(pred.predictions < 0, self.tok.pad_token_id, pred.predictions)
        texts = [""] * len(self.examples)
        for i, text in zip(
            pred.label_ids[:, 0].tolist(),
            self.tok.batch_decode(ids, skip_special_tokens=True),
            strict=True,
        ):
            texts[i] = text.strip()
        self.records = [
            {
                "id": ex.id,
                "prediction": p,
                "answers": list(ex.answers),
                "score": score(self.metric, p, ex),
            }
            for ex, p in zip(self.examples, texts, strict=True)
        ]
        return {self.metric: sum(r["score"] for r in self.records) / max(1, len(self.records))}


# --- phase 4: final evaluation and results --------------------------------------------------


def evaluate(trainer, scorer: Scorer, examples, encoded) -> tuple[float, list[dict]]:
    from train.seq2seq import EvalSet

    scorer.use(examples)
    out = trainer.predict(EvalSet(encoded), metric_key_prefix="final")
    return out.metrics[f"final_{scorer.metric}"], scorer.records


def write_results(cfg, out: Path, trainer, tok, final: dict, records: dict, info: dict) -> dict:
    """Predictions, the best model if asked, then metrics.json (last)."""

    for split, recs in records.items():
        with (out / f"predictions.{split}.jsonl").open("w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    if cfg.save_model:
        export_pretrained(trainer.model, tok, out / "model")
    metrics = {
        "task": cfg.task,
        **final,
        **info,
        "model": cfg.model,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "train_fraction": cfg.train_fraction,
    }
    write_json_atomic(out / RESULT, metrics)
    if not cfg.keep_checkpoints:
        for ckpt in out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    return metrics


# --- the recipe -----------------------------------------------------------------------------


def finetune(cfg: FinetuneConfig) -> dict | None:
    """Train, evaluate, write predictions and metrics; returns the metrics on
    the main process (None on the others)."""
    from train.seq2seq import Collator, EvalSet, TrainSet

    name_cpu_accelerator()  # before the Trainer's integrations import DeepSpeed
    out = Path(cfg.output_dir)
    metric = get_task(cfg.task).metric
    args = training_arguments(cfg, metric, launched_world())
    resume = resume_from(cfg, out)
    fresh = not out.exists(), not (out / "config.json").exists()
    if args.process_index == 0:
        claim_output(cfg, out)
    try:
        tok, model = load_model(cfg)
        splits, encoded = load_data(cfg, tok, model.config.max_position_embeddings)
    except UserError:  # a missing model or data: leave no run folder that looks started
        if args.process_index == 0:
            _unclaim(out, *fresh)
        raise
    dev_n = cfg.max_eval_examples or len(splits["dev"])
    scorer = Scorer(tok, metric, dev_n == len(splits["dev"]))
    timer = {"train_s": 0.0, "steps": 0, "mark": time.perf_counter()}
    dev_set = EvalSet(encoded["dev"][:dev_n])
    scorer.use(splits["dev"][:dev_n])
    t0 = time.perf_counter()
    with stop_requests() as stop:
        trainer = _trainer_class()(
            model=model,
            args=args,
            train_dataset=TrainSet(encoded["train"]),
            eval_dataset=dev_set,
            data_collator=Collator(tok.pad_token_id, model.config.decoder_start_token_id),
            processing_class=tok,
            compute_metrics=scorer,
            callbacks=_callbacks(cfg, out, scorer, timer, stop),
        )
        trainer.train(resume_from_checkpoint=resume)
    state = trainer.state
    # every rank stopped training at the same step if any rank was asked to; each decides
    # alike here, or one would raise while another went on to evaluate and wait for it
    if all_reduce([1.0 if stop.requested else 0.0])[0] > 0:
        raise Interrupted(
            f"interrupted at step {state.global_step} ({stop.signal_name or 'on another rank'}): "
            f"checkpoint-{state.global_step} saved in {out}; rerun the same command to resume"
        )
    best = state.best_global_step or state.global_step
    final, records = {"metric": metric}, {}
    if best in scorer.by_step:  # the loaded best weights scored all of dev already
        final["dev"], records["dev"] = scorer.by_step[best]
    for split in ("dev", "test"):
        if split not in records:
            final[split], records[split] = evaluate(trainer, scorer, splits[split], encoded[split])
    info = {
        "best_step": best,
        "steps": state.global_step,
        "train_examples": len(splits["train"]),
        "dev_examples": len(splits["dev"]),
        "test_examples": len(splits["test"]),
        "seconds": time.perf_counter() - t0,
        "train_examples_per_s": timer["steps"] * cfg.batch_size / max(timer["train_s"], 1e-9),
    }
    if not trainer.is_world_process_zero():
        return None
    return write_results(cfg, out, trainer, tok, final, records, info)


def config_args():
    """The command line of `maskpt finetune` / `train/finetune.py`."""

    return ConfigArgs(FinetuneConfig, "maskpt finetune", __doc__)


def main(argv=None) -> int:
    name_cpu_accelerator()  # before the config's check of trainer_args imports transformers

    def run(cfg: FinetuneConfig, _) -> int:
        try:
            metrics = finetune(cfg)
        except Interrupted:  # raised on every rank at the same point
            finish_distributed()
            raise
        # the Trainer never tears its process group down: under gloo a rank that exits with
        # it still up can abort in interpreter shutdown (SIGABRT, "terminate called ...")
        finish_distributed()
        if metrics is not None:
            print(
                f"{cfg.task}: dev {metrics['metric']} {metrics['dev']:.4f}, "
                f"test {metrics['test']:.4f} (best step {metrics['best_step']})"
            )
        return 0

    return config_args().main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
