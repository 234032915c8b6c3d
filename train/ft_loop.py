"""The fine-tuning loop behind `train/finetune.py`: plain PyTorch in one
process, or a DeepSpeed ZeRO engine under the deepspeed launcher; dev
evaluation with early stopping; final dev/test predictions and metrics."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from train.finetune import FinetuneConfig
from train.model import (
    all_reduce,
    dist_env,
    finish_distributed,
    init_deepspeed,
    split_batch,
    zero_config,
)
from train.pretrain import micro_seed
from train.seq2seq import collate, encode, global_batches, predict, score, smoothed_loss, subset
from train.tasks import TaskDataError, get_task, load_split


class PlainStepper:
    """Single-process optimizer stepping with gradient accumulation, the
    same calls as a DeepSpeed engine (backward, step every micro-batch)."""

    def __init__(self, model, optimizer, scheduler, accum: int, clip: float):
        self.module, self.opt, self.sched = model, optimizer, scheduler
        self.accum, self.clip, self.micro = accum, clip, 0

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, loss):
        (loss / self.accum).backward()

    def step(self):
        self.micro += 1
        if self.micro % self.accum == 0:
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)


def _world() -> tuple[int, int, int]:
    """(rank, local rank, world size); one plain process is (0, 0, 1)."""
    if os.environ.get("WORLD_SIZE") and int(os.environ["WORLD_SIZE"]) > 1:
        return dist_env()
    return 0, 0, 1


def _stepper(cfg: FinetuneConfig, model, world: int, accum: int, micro: int):
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    if not cfg.deepspeed:
        return PlainStepper(model, optimizer, scheduler, accum, cfg.grad_clip)
    import deepspeed

    bf16 = init_deepspeed(cfg.precision)
    config = zero_config(cfg.batch_size, micro, accum, cfg.grad_clip, cfg.zero_stage, bf16)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
    )
    return engine


def _gather(items: list, world: int) -> list:
    if world == 1:
        return items
    import torch.distributed as dist

    parts = [None] * world
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def evaluate(cfg, model, tok, examples, encoded, device, rank, world, metric, progress=False):
    """(mean score, per-example records) over all examples; under several
    processes each generates its share and rank order is restored."""
    mine = list(range(rank, len(examples), world))
    preds = predict(
        model,
        tok,
        [encoded[i] for i in mine],
        cfg.eval_batch,
        cfg.num_beams,
        cfg.min_gen_length,
        cfg.max_gen_length,
        device,
        progress,
    )
    pairs = sorted(_gather(list(zip(mine, preds, strict=True)), world))
    records = []
    for i, pred in pairs:
        ex = examples[i]
        records.append(
            {"id": ex.id, "prediction": pred, "answers": list(ex.answers),
             "score": score(metric, pred, ex)}
        )  # fmt: skip
    mean = sum(r["score"] for r in records) / max(1, len(records))
    return mean, records


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def finetune(cfg: FinetuneConfig) -> dict | None:
    """Train, early-stop on dev, write predictions and metrics; returns the
    metrics on rank 0 (None on other ranks)."""
    from transformers import AutoTokenizer, BartForConditionalGeneration

    from maskpt.config import to_dict

    rank, local_rank, world = _world()
    task = get_task(cfg.task)
    splits = {s: load_split(cfg.task, cfg.data_dir, s) for s in ("train", "dev", "test")}
    splits["train"] = subset(splits["train"], cfg.train_fraction, cfg.subset_seed)
    for split, examples in splits.items():
        if not examples:
            raise TaskDataError(f"{cfg.task}: the {split} split in {cfg.data_dir} is empty")
    if world > 1 and not cfg.deepspeed:
        raise ValueError(f"launched as {world} processes: set deepspeed=true (or run one process)")
    micro = cfg.micro_batch or max(1, cfg.batch_size // world)
    accum = split_batch(cfg.batch_size, micro, world, names=("batch_size", "micro_batch"))
    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    torch.manual_seed(cfg.seed)
    model = BartForConditionalGeneration.from_pretrained(
        cfg.model, dropout=cfg.dropout, attention_dropout=cfg.dropout
    )
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    model.to(device)
    limit = model.config.max_position_embeddings
    src_len, tgt_len = min(cfg.max_source_length, limit), min(cfg.max_target_length, limit)
    enc = {s: encode(tok, ex, src_len, tgt_len, cfg.target_prefix_space)
           for s, ex in splits.items()}  # fmt: skip
    dev_n = cfg.max_eval_examples or len(splits["dev"])
    engine = _stepper(cfg, model, world, accum, micro)
    module = engine.module
    out = Path(cfg.output_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    log = (out / "log.jsonl").open("w") if rank == 0 else None
    n_train = len(splits["train"])
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total = cfg.max_epochs * steps_per_epoch
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    eval_every = cfg.eval_every or steps_per_epoch
    best, best_step, best_state, bad, step = -1.0, 0, None, 0, 0
    best_dev: list[dict] | None = None  # the best evaluation's records, when it scored all of dev
    batches = global_batches(n_train, cfg.batch_size, cfg.seed)
    t0, seen, train_s = time.perf_counter(), 0, 0.0
    bar = None
    if rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"finetune {cfg.task}", dynamic_ncols=True)
    module.train()
    while step < total:
        t_step = time.perf_counter()
        ids = next(batches)[rank * micro * accum : (rank + 1) * micro * accum]
        loss_sum = 0.0
        for m in range(accum):
            batch = collate([enc["train"][i] for i in ids[m * micro : (m + 1) * micro]],
                            tok.pad_token_id)  # fmt: skip
            torch.manual_seed(micro_seed(cfg.seed, step, m, rank))
            loss = smoothed_loss(engine, {k: v.to(device) for k, v in batch.items()},
                                 cfg.label_smoothing)  # fmt: skip
            if all_reduce([float(torch.isfinite(loss).item())], op="min")[0] < 1:  # all ranks stop
                raise FloatingPointError(
                    f"non-finite loss at step {step} on some rank (rank {rank}: loss {loss.item()}, "
                    f"examples {ids})"
                )
            engine.backward(loss)
            engine.step()
            loss_sum += loss.item()
        step += 1
        seen += cfg.batch_size
        train_s += time.perf_counter() - t_step
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / accum:.3f}", best=f"{max(best, 0):.3f}")
        if step % eval_every == 0 or step == total:
            score_, records = evaluate(cfg, module, tok, splits["dev"][:dev_n], enc["dev"][:dev_n],
                                 device, rank, world, task.metric)  # fmt: skip
            rec = {"step": step, "loss": loss_sum / accum, "dev": score_,
                   "train_examples_per_s": seen / train_s}  # fmt: skip
            if log is not None:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if score_ > best:
                best, best_step, bad = score_, step, 0
                best_dev = records if dev_n == len(splits["dev"]) else None
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in module.state_dict().items()}  # fmt: skip
            else:
                bad += 1
                if cfg.patience and bad >= cfg.patience:
                    break
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    final = {}
    for split in ("dev", "test"):
        if split == "dev" and best_dev is not None:  # the restored weights made these already
            final[split], records = best, best_dev
        else:
            final[split], records = evaluate(
                cfg,
                module,
                tok,
                splits[split],
                enc[split],
                device,
                rank,
                world,
                task.metric,
                progress=rank == 0,
            )
        if rank == 0:
            _write_jsonl(out / f"predictions.{split}.jsonl", records)
    metrics = None
    if rank == 0:
        if cfg.save_model:
            module.save_pretrained(str(out / "model"), safe_serialization=True)
            tok.save_pretrained(str(out / "model"))
        metrics = {
            "task": cfg.task, "metric": task.metric, "dev": final["dev"], "test": final["test"],
            "best_step": best_step, "steps": step, "train_examples": n_train,
            "dev_examples": len(splits["dev"]), "test_examples": len(splits["test"]),
            "model": cfg.model, "lr": cfg.lr, "batch_size": cfg.batch_size, "seed": cfg.seed,
            "train_fraction": cfg.train_fraction, "seconds": time.perf_counter() - t0,
            "train_examples_per_s": seen / max(train_s, 1e-9),
        }  # fmt: skip
        tmp = out / "metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        tmp.replace(out / "metrics.json")
    if cfg.deepspeed:
        finish_distributed()
    return metrics
