"""Train the supervised span-extraction policy (`sup_v1`).

    maskpt train-policy supervised --examples qa_contexts.jsonl --model facebook/bart-base --output-dir policies/sup
    maskpt train-policy supervised --task tqa --data-dir data/tqa --output-dir policies/sup_tqa

(c, s, t) examples (`train/policy_data.py`: a JSONL file or a task's own
files, its fine-tuning dev/test questions excluded) where t occurs in c,
the others counted as dropped (`answer_absent`);
a 2-layer BiLSTM over embeddings initialised from the BART model's embedding
matrix; cross-entropy on the start and end positions. The paper's settings
are the defaults (30 epochs, lr 1e-5, batch 512); the checkpoint with the
best validation loss is saved as a policy folder for `sup_v1`.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from maskpt.core.batching import pad_ids
from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import ConfigError, require_at_least_one
from maskpt.core.seeding import stable_rng
from policies import checkpoint
from policies.networks import SpanExtractor, inner_positions, top_spans
from train.policy_data import located
from train.policy_sources import POLICY_TASKS, load_examples
from train.tasks import TaskDataError


@dataclass(frozen=True)
class SupervisedConfig:
    examples: str = ""
    """JSONL of {context, target (or answer, answers), source (or question)}; or task + data_dir."""
    task: str = ""
    """A task whose own (c, s, t) to learn from: nq, tqa, zsre, wow, ropes, wiqa, quartz
    (or synth, the demo's world, from its policy_examples.jsonl)."""
    data_dir: str = ""
    """Folder of the task's files (with task); its fine-tuning dev/test questions are excluded."""
    knowledge_source: str = ""
    """zsre, wow: KILT's kilt_knowledgesource.json (default: data_dir/kilt_knowledgesource.json)."""
    model: str = "facebook/bart-base"
    """BART whose embedding matrix initialises the policy (and whose tokenizer it uses)."""
    tokenizer: str = ""
    """Tokenizer; default: the model's. Must be the one the shards will use."""
    output_dir: str = "runs/policy_sup"
    """Checkpoint folder for `sup_v1`."""
    epochs: int = 30
    """Training epochs (the paper: 30)."""
    max_steps: int = 0
    """Stop after this many steps (0 = epochs decide)."""
    lr: float = 1e-5
    """Adam learning rate (the paper: 1e-5)."""
    batch_size: int = 512
    """Examples per step (the paper: 512)."""
    hidden: int = 300
    """LSTM hidden size per direction."""
    layers: int = 2
    """LSTM layers."""
    dropout: float = 0.1
    """Dropout on embeddings and LSTM outputs."""
    max_length: int = 128
    """Context window in tokens (the shards' segment length)."""
    max_span_length: int = 10
    """Answers longer than this (tokens) are dropped; the deployed policy's limit."""
    val_fraction: float = 0.1
    """Share of examples held out for validation loss and span accuracy."""
    seed: int = 0
    """Seed for the split, initialisation and order."""

    def __post_init__(self):
        if not self.examples and not (self.task and self.data_dir):
            raise ValueError("give examples=FILE.jsonl, or task=TASK with data_dir=DIR")
        if self.task and self.task not in POLICY_TASKS:
            raise ValueError(
                f"task: {self.task!r} has no policy-training reader; one of "
                f"{', '.join(POLICY_TASKS)}, or write a JSONL and pass examples="
            )
        require_at_least_one(
            self, "epochs", "batch_size", "hidden", "layers", "max_length", "max_span_length"
        )
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")


def encode(tok, examples, max_length: int, max_span: int, dropped: Counter):
    """(ids, start, end) per example: a window of the context around the answer."""
    out = []
    room = max_length - 2
    for ex in examples:
        enc = tok(ex.context, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        span = [k for k, (a, b) in enumerate(offs) if a < ex.end and b > ex.start]
        if not span:
            dropped["answer_not_tokenized"] += 1
            continue
        s, e = span[0], span[-1]
        if e - s + 1 > max_span:
            dropped["answer_too_long"] += 1
            continue
        w = max(0, min(s - room // 2, len(ids) - room))
        window = ids[w : w + room]
        out.append(([tok.bos_token_id, *window, tok.eos_token_id], s - w + 1, e - w + 1))
    return out


def batch_tensors(items, pad_id: int):
    ids, att = pad_ids([i[0] for i in items], pad_id)
    starts = torch.tensor([i[1] for i in items])
    ends = torch.tensor([i[2] for i in items])
    return ids, att, starts, ends


def evaluate(net, items, tok, max_span: int, batch: int = 256) -> tuple[float, float]:
    """(mean loss, top-1 exact span accuracy)."""

    net.eval()
    loss, hits = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(items), batch):
            ids, att, s, e = batch_tensors(items[k : k + batch], tok.pad_token_id)
            start, end = net(ids, att)
            loss += float(span_loss(start, end, s, e)) * len(s)
            allowed = inner_positions(ids, att, tok.bos_token_id, tok.eos_token_id)
            _, bs, be = top_spans(start, end, allowed, max_span, 1)
            hits += int(((bs[:, 0] == s) & (be[:, 0] == e)).sum())
    net.train()
    return loss / max(1, len(items)), hits / max(1, len(items))


def span_loss(start, end, s, e):
    ce = torch.nn.functional.cross_entropy
    return (ce(start, s) + ce(end, e)) / 2


# --- phase 1: examples -> (train, validation) windows -------------------------------------


def load_items(cfg: SupervisedConfig, tok, dropped: Counter) -> tuple[list, list]:
    """(train items, validation items), split by the seed; a one-line error when fewer
    than two examples are usable."""
    examples = located(
        load_examples(cfg.examples, cfg.task, cfg.data_dir, cfg.knowledge_source, dropped), dropped
    )
    items = encode(tok, examples, cfg.max_length, cfg.max_span_length, dropped)
    if len(items) < 2:
        raise TaskDataError(
            f"{cfg.examples or cfg.task}: {len(items)} usable examples, at least 2 needed "
            f"(dropped: {dict(dropped)})"
        )
    order = stable_rng("sup-split", cfg.seed).permutation(len(items))
    n_val = max(1, int(len(items) * cfg.val_fraction))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


# --- phase 2: the network, its embeddings from the BART model ------------------------------


def build(cfg: SupervisedConfig, tok) -> tuple[SpanExtractor, dict]:
    """(network, the arguments its checkpoint saves)."""
    from transformers import BartForConditionalGeneration

    emb = BartForConditionalGeneration.from_pretrained(cfg.model).get_input_embeddings().weight
    if emb.size(0) < len(tok):
        raise ConfigError(
            f"{cfg.model}: {emb.size(0)} embeddings for {len(tok)} tokenizer tokens; "
            "give the tokenizer the model was trained with"
        )
    torch.manual_seed(cfg.seed)
    args = {
        "vocab_size": emb.size(0),
        "embed_dim": emb.size(1),
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "dropout": cfg.dropout,
        "pad_id": tok.pad_token_id,
    }
    net = SpanExtractor(**args)
    with torch.no_grad():
        net.embed.weight.copy_(emb)
    return net, args


# --- phase 3: training, validated each epoch, the best checkpoint kept ---------------------


def fit(cfg, net, args, tok, train_items, val, dropped: Counter, progress: bool) -> dict:
    """Train for `epochs` (or `max_steps`); after each epoch log the validation loss and
    top-1 accuracy and save the network when its loss is the best so far."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    per_epoch = math.ceil(len(train_items) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    best, step, epoch = math.inf, 0, 0
    summary: dict = {}
    with (
        (out / "train_log.jsonl").open("w") as log,
        tqdm(total=total, desc="train sup_v1", disable=not progress, dynamic_ncols=True) as bar,
    ):
        while step < total:
            perm = stable_rng("sup-order", cfg.seed, epoch).permutation(len(train_items))
            for k in range(0, len(perm), cfg.batch_size):
                ids, att, s, e = batch_tensors(
                    [train_items[i] for i in perm[k : k + cfg.batch_size]], tok.pad_token_id
                )
                loss = span_loss(*net(ids, att), s, e)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step >= total:
                    break
            epoch += 1
            val_loss, val_acc = evaluate(net, val, tok, cfg.max_span_length)
            record = {"epoch": epoch, "step": step, "val_loss": val_loss, "val_top1": val_acc}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if val_loss < best:
                best = val_loss
                summary = {
                    **record,
                    "train_examples": len(train_items),
                    "val_examples": len(val),
                    "dropped": dict(dropped),
                }
                checkpoint.save(out, "sup_v1", net, args, tok, summary)
    return summary


def train(cfg: SupervisedConfig, progress: bool = True) -> dict:
    """Train `sup_v1` and save its best checkpoint in `cfg.output_dir`; returns its summary."""
    from transformers import AutoTokenizer

    dropped: Counter = Counter()
    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    train_items, val = load_items(cfg, tok, dropped)
    net, args = build(cfg, tok)
    return fit(cfg, net, args, tok, train_items, val, dropped, progress)


def config_args():
    return ConfigArgs(SupervisedConfig, "maskpt train-policy supervised", __doc__)


def main(argv=None) -> int:
    def run(cfg: SupervisedConfig, _) -> int:
        s = train(cfg)
        print(
            f"sup_v1 checkpoint in {cfg.output_dir}: val loss {s['val_loss']:.3f}, top-1 span "
            f"accuracy {s['val_top1']:.3f}; dropped {s['dropped'] or 'none'}"
        )
        return 0

    return config_args().main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
