"""Intermediate pre-training of BART on masked shards, with DeepSpeed ZeRO.

    maskpt pretrain --config configs/pretrain/tiny_cpu.yaml data.shards=[out/rand]
    deepspeed train/pretrain.py --config configs/pretrain/bart_base_paper.yaml [key=value ...]
    deepspeed --num_gpus 8 train/pretrain.py --config configs/pretrain/bart_base_paper.yaml --resume

The model input is each row's `input_ids` (the masked sequence), the labels
its `labels` (padding ignored in the loss), for `full` and `span` targets
alike: what a Hugging Face user feeding the rows to BART would do. The global batch is reached as
micro-batch x gradient accumulation x world size, whatever the GPU count.
Checkpoints are DeepSpeed checkpoints (all ranks save) holding the data
stream's position and a record of the data it means (`train/checkpoints.py`);
`--resume` continues from the newest intact one with exactly the examples not
yet seen, refusing other data or another batch layout by name. Ctrl-C or
SIGTERM stops after the current step with a checkpoint. At the end the model
and tokenizer are exported with `save_pretrained` to OUTPUT/hf for
fine-tuning; `maskpt export` makes the same folder from any checkpoint
(OUTPUT/model holds the model's config and tokenizer for it). Loss, learning
rate, grad norm, mask ratio and tokens/s go to log.jsonl and to DeepSpeed's
monitor (TensorBoard under OUTPUT/monitor by default; `train/monitor.py`).

The step is built to keep a GPU busy (issue 26): one host sync per optimizer
step (losses, finiteness, counts and the stop request reduced together,
before the update is applied), micro-batches collated in the DataLoader
workers and copied pinned and non-blocking, optional length bucketing inside
each global batch (`data.bucket`, the loss then normalised over the global
batch's tokens), the vocabulary padded to a multiple of 64 for training (cut
back on export), `compile: true` for torch.compile, and ZeRO stage 0 in one
process (`zero_stage: auto`).

The recipe in phases: `prepare` (everything that can fail on bad input,
before any distributed set-up), `setup` (engine, stream, run folder),
`restore` (a checkpoint's weights and data position), `train_step` (one
optimizer step over the accumulated micro-batches), `log_step`, `save`,
`export`, and `cleanup`; `train` runs them and `main` parses the command line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError, merge, read_yaml_mapping, to_dict
from maskpt.core.errors import UserError, disk_full
from maskpt.core.hub import check_local_or_hub
from maskpt.core.interrupts import Interrupted, stop_requests
from maskpt.core.seeding import micro_seed
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer, tokenizer_fingerprint
from preprocess.remask import Remasker
from train import checkpoints
from train.batches import TENSORS, keep_as_is
from train.checkpoints import tags
from train.data import DataError, PretrainStream, open_source
from train.distributed import (
    NonFiniteLoss,
    all_reduce,
    dist_env,
    finish_distributed,
    full_parameters,
    init_deepspeed,
    seed_step,
    split_batch,
    zero_config,
)
from train.model import build_model, export_pretrained, pad_vocab, save_skeleton
from train.monitor import WandbRun, deepspeed_config, monitor_sections, take_wandb, write_scalars
from train.pretrain_config import PretrainConfig, lr_lambda, resolve_zero_stage


@dataclass
class Run:
    """One invocation's state, shared by the phases."""

    cfg: PretrainConfig
    rank: int
    world: int
    tok: object
    engine: object
    stream: PretrainStream
    accum: int
    out: Path
    data: dict = field(default_factory=dict)
    step: int = 0
    history: list = field(default_factory=list)
    log: object = None
    ids_log: object = None
    bar: object = None
    mask_ratio: float = 0.0
    grad_norm: float | None = None
    own_grad_norm: bool = False
    """Measure the gradient norm here: DeepSpeed reports none at fp32 ZeRO stage 0."""
    clip: float = 0.0
    """Clip the gradients here to this norm (0: not here; `own_clipping`)."""
    wandb: object = None
    """The W&B run (rank 0, `report_to: [wandb]`)."""

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"


# --- phases ---------------------------------------------------------------------------


def prepare(cfg: PretrainConfig, world: int, rank: int = 0):
    """Everything that can fail on bad input, before any training: tokenizer,
    shard folders (complete, intact, same tokenizer, same max_length), batch split."""

    split_batch(cfg.global_batch, cfg.micro_batch, world)
    if not cfg.model.config:  # a missing model folder is named as the model, not its tokenizer
        check_local_or_hub(cfg.model.name_or_path, "model")
    tok = load_tokenizer(cfg.model.tokenizer_name)
    sha = tokenizer_fingerprint(tok)
    weights = cfg.data.weights or (1.0,) * len(cfg.data.shards)
    sources = [
        open_source(f, w, sha, cfg.data.verify, verify_part=(rank, world))
        for f, w in zip(cfg.data.shards, weights, strict=True)
    ]
    for s in sources:
        if s.index.max_length > cfg.max_length:
            raise DataError(
                f"{s.folder}: shards have max_length {s.index.max_length}, the run {cfg.max_length}"
            )
        if cfg.data.remask == "per_epoch":
            s.remasker = Remasker(
                s.index,
                TokenizerInfo.from_tokenizer(tok),
                cfg.data.policy or None,
                cfg.data.mask_seed,
            )
    return tok, sources


def data_record(cfg: PretrainConfig, sources, world: int) -> dict:
    """What a stream position means: saved in every checkpoint, compared on resume."""
    return {
        "shards": [s.index_checksum for s in sources],
        "weights": [s.weight for s in sources],
        "seed": cfg.seed,
        "shuffle": cfg.data.shuffle,
        "global_batch": cfg.global_batch,
        "micro_batch": cfg.micro_batch,
        "world_size": world,
        "remask": cfg.data.remask,
        "policy": cfg.data.policy,
        "mask_seed": cfg.data.mask_seed,
        "bucket": cfg.data.bucket,
    }


def claim_output(out: Path, resume: bool, overwrite: bool) -> bool:
    """A folder with checkpoints needs --resume or --overwrite; --resume needs
    checkpoints. True when the folder is to be cleared (--overwrite)."""

    found = tags(out / "checkpoints")
    if resume and not found:
        raise UserError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    if found and not resume and not overwrite:
        raise UserError(
            f"{out / 'checkpoints'} already has checkpoints: pass --resume to continue, "
            "--overwrite to start over, or use another output_dir"
        )
    return bool(found) and overwrite and not resume


def clear_output(out: Path) -> None:
    """What a run left in `out`: checkpoints, export and log (for --overwrite)."""

    for name in ("checkpoints", "hf", "log.jsonl", "monitor", "exports", "model"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def setup(cfg: PretrainConfig, resume: bool, overwrite: bool = False) -> Run:
    """Check the input, start DeepSpeed, build the engine and the data stream."""

    rank, _, world = dist_env()
    tok, sources = prepare(cfg, world, rank)  # fails fast on bad input, before distributed init
    out = Path(cfg.output_dir)
    clear = claim_output(out, resume, overwrite)  # refusals come before distributed init
    bf16 = init_deepspeed(cfg.precision)  # names the CPU accelerator before importing DeepSpeed
    import deepspeed

    if clear:
        if rank == 0:
            clear_output(out)
        dist.barrier()
    model = pad_vocab(build_model(cfg.model, tok, cfg.seed), cfg.pad_vocab_to_multiple_of)
    if cfg.compile:
        model.compile(
            **cfg.compile_options
        )  # in place: the parameter names (and checkpoints) stay the model's
    o = cfg.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    accum = split_batch(cfg.global_batch, cfg.micro_batch, world)
    computed = {
        **zero_config(
            cfg.global_batch,
            cfg.micro_batch,
            accum,
            o.grad_clip,
            resolve_zero_stage(cfg.zero_stage, world),
            bf16,
        ),
        **monitor_sections(cfg.report_to, out, "pretrain"),
    }
    ds_config = deepspeed_config(computed, cfg.deepspeed)
    wandb_section = take_wandb(ds_config)  # the recipe logs to W&B itself (train/monitor.py)
    own_norm, clip = own_clipping(ds_config)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
    )
    if world == 1 and engine.zero_optimization_stage() == 0:
        # one process, no ZeRO: DeepSpeed's gradient all-reduce at each accumulation boundary
        # flattens, scales by 1 and copies back every gradient (exact; 3% of a CPU step)
        engine.enable_backward_allreduce = False
    stream = PretrainStream(
        sources,
        cfg.micro_batch,
        rank,
        world,
        cfg.seed,
        cfg.data.shuffle,
        len(tok),
        cfg.max_length,
        accum=accum,
        bucket=cfg.data.bucket,
        pad_id=tok.pad_token_id,
        pad_to_multiple_of=cfg.data.pad_to_multiple_of,
        pad_labels_to_multiple_of=cfg.data.pad_labels_to_multiple_of,
    )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        (out / "deepspeed_config.json").write_text(json.dumps(ds_config, indent=2) + "\n")
        save_skeleton(model, tok, out / "model")  # what `maskpt export` builds a checkpoint into
    wandb_run = None
    if wandb_section and rank == 0:
        wandb_run = WandbRun(wandb_section, out, to_dict(cfg))
    return Run(
        cfg,
        rank,
        world,
        tok,
        engine,
        stream,
        accum,
        out,
        data=data_record(cfg, sources, world),
        own_grad_norm=own_norm,
        clip=clip,
        wandb=wandb_run,
    )


def own_clipping(ds_config: dict) -> tuple[bool, float]:
    """(whether the recipe measures the gradient norm itself, the norm it clips
    to). In fp32 without ZeRO DeepSpeed logs no norm, and its clipping takes a
    second, per-parameter pass (2% of a CPU step): the recipe measures the norm
    once, for the log, and clips with it (as `torch.nn.utils.clip_grad_norm_`
    does), so DeepSpeed's config gets `gradient_clipping: 0` there (in place;
    OUTPUT/deepspeed_config.json shows it so)."""
    half = any(ds_config.get(k, {}).get("enabled") for k in ("bf16", "fp16"))
    if half or ds_config["zero_optimization"]["stage"] != 0:
        return False, 0.0
    clip = ds_config.get("gradient_clipping") or 0.0
    if isinstance(clip, bool) or not isinstance(clip, int | float) or clip < 0:
        raise ConfigError(f"deepspeed: gradient_clipping must be a number >= 0, got {clip!r}")
    ds_config["gradient_clipping"] = 0.0
    return True, float(clip)


def _agree(ok: bool) -> bool:
    """True when `ok` holds on every rank."""
    return all_reduce([1.0 if ok else 0.0], op="min")[0] > 0


def restore(run: Run, allow_data_change: bool = False) -> None:
    """Load the newest intact checkpoint (weights, optimizer, schedule, data
    position), passing over torn ones with a warning; refuse other data."""

    for tag in checkpoints.tags(run.ckpt_dir):
        why = checkpoints.intact(run.ckpt_dir, tag, run.rank, content=True)
        if not _agree(not why):
            _warn(
                run,
                f"checkpoint {tag} is not intact ({why or 'on another rank'}); "
                "trying the one before",
            )
            continue
        try:
            _, client = run.engine.load_checkpoint(str(run.ckpt_dir), tag=tag)
            loaded = client is not None
        except Exception as exc:  # a file that reads wrong although its size is right
            loaded, why = False, f"{type(exc).__name__}: {exc}"
        if not _agree(loaded):
            _warn(run, f"checkpoint {tag} does not load ({why}); trying the one before")
            continue
        checkpoints.check_data(
            client.get("record", {}), run.data, f"checkpoint {tag}", allow_data_change
        )
        run.step = int(client["step"])
        run.stream.load_state_dict(client["data"])
        if run.stream.micro_steps_done != run.step * run.accum:
            raise RuntimeError("checkpoint data position does not match its step")
        if run.rank == 0:
            _truncate_log(run.out / "log.jsonl", run.step)
        return
    raise UserError(f"--resume: no intact checkpoint in {run.ckpt_dir}")


def _warn(run: Run, message: str) -> None:
    if run.rank == 0:
        print(f"maskpt pretrain: {message}", file=sys.stderr)


def _truncate_log(path: Path, step: int) -> None:
    """Drop the log lines of steps after the checkpoint (they are trained again)."""
    if path.exists():
        lines = [x for x in path.read_text().splitlines() if json.loads(x)["step"] <= step]
        path.write_text("".join(x + "\n" for x in lines))


def open_logs(run: Run) -> None:
    """log.jsonl and the progress bar on rank 0; example-id logs when asked."""
    cfg = run.cfg
    if run.rank == 0:
        run.log = (run.out / "log.jsonl").open("a")
        run.bar = tqdm(total=cfg.total_steps, initial=run.step, desc="pretrain", dynamic_ncols=True)
    if cfg.debug_records:
        run.out.mkdir(parents=True, exist_ok=True)  # rank 0 may not have made it yet
        run.ids_log = (run.out / f"example_ids.rank{run.rank}.jsonl").open("a")


def train_step(run: Run, batches, stop_requested: bool = False) -> tuple[float, float, bool]:
    """One optimizer step over `accum` micro-batches with one host sync: every
    rank's losses, finiteness flags, counts and stop request are reduced
    together after the last backward and before the update is applied, so a
    non-finite step is never applied. Returns (mean loss, tokens, stop) over
    all ranks: the loss is the mean over label tokens with `data.bucket`
    (the gradient too), else the mean of the micro-batches' means."""

    engine, step, accum, bucket = run.engine, run.step, run.accum, run.cfg.data.bucket
    losses, finite, ids = [], [], []
    counts = [0, 0, 0, 0]  # tokens, label tokens, masked, original
    for micro in range(accum):
        b = next(batches)
        if "data_error" in b:  # a shard that cannot be read (changed, corrupt): stop, one line
            raise DataError(
                f"at step {step + 1}: {b['data_error']}; nothing of this step was "
                f"applied, the checkpoints in {run.ckpt_dir} are kept"
            )
        ids.append(b["ids"])
        if run.ids_log is not None:
            run.ids_log.write(json.dumps({"step": step, "micro": micro, "ids": b["ids"]}) + "\n")
        seed_step(micro_seed(run.cfg.seed, step, micro, run.rank), engine.device)
        loss = engine(**{k: b[k].to(engine.device, non_blocking=True) for k in TENSORS}).loss
        finite.append(torch.isfinite(loss.detach()))
        if bucket:  # sum over tokens / the global batch's tokens (DeepSpeed divides by
            # accumulation and averages ranks: multiply both back)
            losses.append(loss.detach() * b["label_tokens"])
            loss = loss * (b["label_tokens"] * accum * run.world / b["norm_tokens"])
        else:
            losses.append(loss.detach())
        engine.backward(loss)
        for i, key in enumerate(("tokens", "label_tokens", "masked", "original")):
            counts[i] += b[key]
        if micro < accum - 1:
            engine.step()  # no update before the accumulation boundary
            run.stream.advance()
    flags = (~torch.stack(finite)).double()
    norm = _grad_norm(engine) if run.own_grad_norm else flags.new_zeros(())
    local = torch.cat(
        [
            torch.stack(losses).double().sum().reshape(1),
            norm.double().reshape(1),
            flags,
            torch.tensor(
                [*counts, float(stop_requested)], dtype=torch.float64, device=flags.device
            ),
        ]
    )
    total = all_reduce(local)  # the step's one host sync
    loss_sum, run.grad_norm, bad = total[0], total[1] / run.world, total[2 : 2 + accum]
    tokens, label_tokens, masked, original, stops = total[2 + accum :]
    if any(bad):
        _refuse_non_finite(run, bad, flags.tolist(), ids, torch.stack(losses).tolist())
    if run.clip > 0:
        params = engine.module.parameters()
        torch.nn.utils.clip_grads_with_norm_(params, run.clip, torch.tensor(run.grad_norm))
    engine.step()
    run.stream.advance()
    run.mask_ratio = masked / max(original, 1.0)
    mean = loss_sum / max(label_tokens, 1.0) if bucket else loss_sum / (accum * run.world)
    return mean, tokens, stops > 0


def _grad_norm(engine):
    """The gradients' 2-norm as a device tensor (no sync), for the case where
    DeepSpeed keeps none (fp32 at ZeRO stage 0); the same on every rank, as
    the gradients are averaged by then."""
    grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads)


def _refuse_non_finite(run: Run, bad: list, mine: list, ids: list, losses: list) -> None:
    """Stop every rank (nothing of the step applied or saved), naming the first
    micro-step with a non-finite loss and this rank's examples there."""
    micro = next(i for i, n in enumerate(bad) if n)
    where = f"rank {run.rank}: loss {losses[micro]}" if mine[micro] else "another rank"
    raise NonFiniteLoss(
        f"non-finite loss at step {run.step + 1}, micro-step {micro} (examples {ids[micro]}) "
        f"on some rank ({where}); stopping without saving (a diverging learning rate? lower "
        "optim.lr or raise optim.warmup_steps; or look at these examples)"
    )


def log_step(run: Run, loss: float, tokens: float, seconds: float) -> None:
    """One line of log.jsonl and the progress bar's numbers (rank 0)."""
    norm = run.grad_norm if run.own_grad_norm else run.engine.get_global_grad_norm()
    rec = {
        "step": run.step,
        "loss": loss,
        "lr": run.engine.get_lr()[0],
        "grad_norm": None if norm is None else float(norm),
        "mask_ratio": run.mask_ratio,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "examples_seen": run.step * run.cfg.global_batch,
    }
    scalars = ("loss", "lr", "grad_norm", "mask_ratio", "tokens_per_s")
    write_scalars(
        run.engine, run.step, {k: rec[k] for k in scalars if rec[k] is not None}, run.wandb
    )
    run.log.write(json.dumps(rec) + "\n")
    run.log.flush()
    run.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")


def save(run: Run) -> None:
    """A DeepSpeed checkpoint (all ranks) holding the step, the data position
    and the data record; then each rank's completion file; then pruning."""

    tag = f"step{run.step:08d}"
    try:
        run.engine.save_checkpoint(
            str(run.ckpt_dir),
            tag=tag,
            client_state={"step": run.step, "data": run.stream.state_dict(), "record": run.data},
        )
    except (OSError, RuntimeError) as exc:  # torch's zip writer says "unexpected pos ..."
        if not disk_full(exc) and shutil.disk_usage(run.ckpt_dir).free > 1 << 30:
            raise
        raise UserError(
            f"saving checkpoint {tag} in {run.ckpt_dir}: no space left on its disk "
            f"({shutil.disk_usage(run.ckpt_dir).free:,} bytes free); the checkpoints before it "
            "are intact (this one is not marked complete): free space, then rerun with --resume"
        ) from exc
    dist.barrier()
    checkpoints.mark_complete(run.ckpt_dir, tag, run.rank, run.step, run.data, run.world)
    dist.barrier()
    if checkpoints.prune_allowed(run.rank):
        checkpoints.prune(run.ckpt_dir, run.cfg.keep_last, run.rank)
    if run.cfg.export_every:
        with full_parameters(run.engine):  # every rank joins a ZeRO-3 gather
            if run.rank == 0:
                export_pretrained(run.engine.module, run.tok, run.out / "exports" / tag)


def export(run: Run) -> None:
    """The Hugging Face folder OUTPUT/hf (rank 0), once the run reached total_steps."""
    if run.cfg.export and run.step >= run.cfg.total_steps:
        with full_parameters(run.engine):  # every rank joins a ZeRO-3 gather
            if run.rank == 0:
                export_pretrained(run.engine.module, run.tok, run.out / "hf")


def cleanup(run: Run) -> None:
    """Close logs, write the debug parameter hash, tear distributed down."""
    for f in (run.bar, run.log, run.ids_log, run.wandb):
        if f is not None:
            f.close()
    if run.cfg.debug_records:
        h = hashlib.sha256()
        with full_parameters(run.engine):
            for p in run.engine.module.parameters():
                h.update(p.detach().float().cpu().numpy().tobytes())
        (run.out / f"param_sha256.rank{run.rank}.txt").write_text(h.hexdigest())
    finish_distributed()


# --- the recipe -----------------------------------------------------------------------


def train(
    cfg: PretrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    allow_data_change: bool = False,
) -> dict:
    """Run (or resume) pre-training; returns the last step and the losses of
    this invocation. A SIGINT/SIGTERM stops after the step under way, with a
    checkpoint (`Interrupted`)."""

    run = setup(cfg, resume, overwrite)
    if resume:
        restore(run, allow_data_change)
    workers = cfg.data.num_workers
    loader = torch.utils.data.DataLoader(
        run.stream,
        batch_size=None,
        collate_fn=keep_as_is,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=cfg.data.prefetch_factor if workers else None,
    )
    batches = iter(loader)
    open_logs(run)
    last = min(cfg.total_steps, run.step + cfg.stop_after) if cfg.stop_after else cfg.total_steps
    t0, tokens_since = time.perf_counter(), 0.0
    with stop_requests() as stop:
        while run.step < last:
            loss, tokens, stopping = train_step(run, batches, stop.requested)
            run.step += 1
            run.history.append(loss)
            tokens_since += tokens
            if run.rank == 0:
                if run.step % cfg.log_every == 0 or run.step == last:
                    log_step(run, loss, tokens_since, time.perf_counter() - t0)
                    t0, tokens_since = time.perf_counter(), 0.0
                run.bar.update(1)
            if (cfg.save_every and run.step % cfg.save_every == 0) or run.step == last or stopping:
                save(run)
            if stopping:
                cleanup(run)
                raise Interrupted(
                    f"interrupted at step {run.step} ({stop.signal_name or 'a signal'} on some "
                    f"rank): checkpoint step{run.step:08d} saved in {run.ckpt_dir}; rerun with "
                    "--resume to continue"
                )
    export(run)
    cleanup(run)
    return {"step": run.step, "losses": run.history}


def config_args():
    """The command line of `maskpt pretrain` / `deepspeed train/pretrain.py`."""

    args = ConfigArgs(PretrainConfig, "maskpt pretrain", __doc__)
    args.parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest intact checkpoint in output_dir",
    )
    args.parser.add_argument(
        "--overwrite", action="store_true", help="start over in an output_dir that has checkpoints"
    )
    args.parser.add_argument(
        "--deepspeed_config",
        "--deepspeed-config",
        metavar="FILE",
        help="a DeepSpeed JSON config merged over the recipe's (and over a `deepspeed:` section)",
    )
    args.parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: go on although the data or batch layout "
        "differs from the checkpoint's (exactly-once is lost)",
    )
    return args


def main(argv=None) -> int:
    def run(cfg: PretrainConfig, ns) -> int:
        if ns.deepspeed_config:
            cfg = replace(  # the user's JSON (JSON is YAML) over the config's section
                cfg, deepspeed=merge(cfg.deepspeed, read_yaml_mapping(ns.deepspeed_config))
            )
        train(cfg, resume=ns.resume, overwrite=ns.overwrite, allow_data_change=ns.allow_data_change)
        return 0

    return config_args().main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
