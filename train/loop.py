"""The pre-training loop behind `train/pretrain.py`: DeepSpeed engine, the
shard stream, logging, non-finite-loss guard, checkpoints and export."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from train.data import DataError, PretrainStream, collate, open_source
from train.model import all_reduce, build_model, dist_env, finish_distributed, init_deepspeed
from train.pretrain import (
    NonFiniteLoss,
    PretrainConfig,
    accumulation_steps,
    deepspeed_config,
    lr_lambda,
    micro_seed,
)


def prepare(cfg: PretrainConfig, world: int, rank: int = 0):
    """Everything that can fail on bad input, before any training: tokenizer,
    shard folders (complete, intact, same tokenizer, same max_length), batch split."""
    from maskpt.tokenizer import load_tokenizer, tokenizer_fingerprint

    accumulation_steps(cfg, world)
    tok = load_tokenizer(cfg.model.tokenizer_name)
    sha = tokenizer_fingerprint(tok)
    weights = cfg.data.weights or (1.0,) * len(cfg.data.shards)
    sources = [
        open_source(f, w, sha, cfg.data.verify, verify_part=(rank, world))
        for f, w in zip(cfg.data.shards, weights, strict=True)
    ]
    for s in sources:
        if s.index.get("max_length", cfg.max_length) > cfg.max_length:
            raise DataError(
                f"{s.folder}: shards have max_length {s.index['max_length']}, the run {cfg.max_length}"
            )
    return tok, sources


def train(cfg: PretrainConfig, resume: bool = False) -> dict:
    import deepspeed

    rank, _, world = dist_env()
    tok, sources = prepare(cfg, world, rank)  # fails fast on bad input, before distributed init
    bf16 = init_deepspeed(cfg.precision)

    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    if not resume and (ckpt_dir / "latest").exists():
        raise FileExistsError(
            f"{ckpt_dir} already has checkpoints: pass --resume to continue, or use another output_dir"
        )
    if resume and not (ckpt_dir / "latest").exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {ckpt_dir}")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        from maskpt.config import to_dict

        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    model = build_model(cfg.model, tok, cfg.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        eps=cfg.optim.eps,
        weight_decay=cfg.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(cfg, world, bf16),
    )
    accum = accumulation_steps(cfg, world)
    stream = PretrainStream(
        sources, cfg.micro_batch, rank, world, cfg.seed, cfg.data.shuffle, len(tok), cfg.max_length
    )
    step = 0
    if resume:
        _, client = engine.load_checkpoint(str(ckpt_dir))
        step = int(client["step"])
        stream.load_state_dict(client["data"])
        if stream.micro_steps_done != step * accum:
            raise RuntimeError("checkpoint data position does not match its step")
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.data.num_workers)
    batches = iter(loader)
    log = (out / "log.jsonl").open("a") if rank == 0 else None
    ids_log = (out / f"example_ids.rank{rank}.jsonl").open("a") if cfg.debug_records else None
    last = min(cfg.total_steps, step + cfg.stop_after) if cfg.stop_after else cfg.total_steps
    bar = None
    if rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.total_steps, initial=step, desc="pretrain", dynamic_ncols=True)
    t0, tokens_since, history = time.perf_counter(), 0.0, []
    device = engine.device
    while step < last:
        loss_sum, tokens = 0.0, 0
        for micro in range(accum):
            rows = next(batches)
            batch = collate(rows, tok.pad_token_id)
            ids = batch.pop("ids")
            if ids_log is not None:
                ids_log.write(json.dumps({"step": step, "micro": micro, "ids": ids}) + "\n")
            torch.manual_seed(micro_seed(cfg.seed, step, micro, rank))
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = engine(**batch).loss
            finite = all_reduce([1.0 if torch.isfinite(loss).item() else 0.0], op="min")[0]
            if finite < 1:
                raise NonFiniteLoss(
                    f"non-finite loss at step {step}, micro-step {micro} (rank {rank}: loss "
                    f"{loss.item()}, examples {ids}); stopping without saving"
                )
            engine.backward(loss)
            engine.step()
            stream.advance()
            loss_sum += loss.item()
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
        step += 1
        mean_loss, all_tokens = all_reduce([loss_sum / accum, float(tokens)])
        mean_loss /= world
        history.append(mean_loss)
        tokens_since += all_tokens
        if rank == 0 and (step % cfg.log_every == 0 or step == last):
            secs = time.perf_counter() - t0
            rec = {
                "step": step,
                "loss": mean_loss,
                "lr": engine.get_lr()[0],
                "tokens": tokens_since,
                "seconds": secs,
                "tokens_per_s": tokens_since / secs,
                "examples_seen": step * cfg.global_batch,
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{mean_loss:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
            t0, tokens_since = time.perf_counter(), 0.0
        if bar is not None:
            bar.update(1)
        if (cfg.save_every and step % cfg.save_every == 0) or step == last:
            engine.save_checkpoint(
                str(ckpt_dir),
                tag=f"step{step:08d}",
                client_state={"step": step, "data": stream.state_dict()},
            )
    if bar is not None:
        bar.close()
    for f in (log, ids_log):
        if f is not None:
            f.close()
    if cfg.debug_records:
        h = hashlib.sha256()
        for p in engine.module.parameters():
            h.update(p.detach().float().cpu().numpy().tobytes())
        (out / f"param_sha256.rank{rank}.txt").write_text(h.hexdigest())
    if rank == 0 and cfg.export and step >= cfg.total_steps:
        export_dir = out / "hf"
        engine.module.save_pretrained(str(export_dir), safe_serialization=True)
        tok.save_pretrained(str(export_dir))
    finish_distributed()
    return {"step": step, "losses": history}
