"""Train the meta-learned masking policy (`meta_v1`): the paper's Algorithm 1.

    maskpt train-policy meta --examples contexts.jsonl --model facebook/bart-base --output-dir policies/meta
    maskpt train-policy meta --task wow --data-dir data/wow knowledge_source=kilt_knowledgesource.json

Examples are (c, s, t) (`train/policy_data.py`): a context paragraph the
dataset provides, and the fine-tuning source and target — from a JSONL file
or a task's own files (NQ, TQA, zsRE, WoW, ROPES, WIQA, QuaRTz), none of
them needing t to occur in c. One meta step on a batch of (c, s, t):
1. the policy phi gives (keep, mask) logits per context token; a
   straight-through hard Gumbel-softmax sample d (tau) picks the masks;
2. the source embeddings are (1 - d) E[x] + d E[<mask>]; one inner SGD step
   of pre-training (reconstruct the full context) gives theta(p,1);
3. one inner SGD step of fine-tuning on (s -> t) gives theta2;
4. outer loss L_ft(theta2) - L_ft(theta(p,1)) + beta * L_reg, with the
   paper's Eq. 7 per sequence, in token counts,
   L_reg = δ[|γ·l(x) − l(d)| > ε·l(x)] · (γ·l(x) − l(d))², averaged over the
   batch (γ 0.15, ε 0.05); the gradient flows through both inner steps
   (`higher`) into phi only;
5. phi is updated, and the model carries theta(p,1) forward.

`backend: func` does the same with torch.func.functional_call (for
comparison, see bench/policy_throughput.py). BART must use eager attention
(double backward).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch


@dataclass(frozen=True)
class MetaConfig:
    examples: str = ""
    """JSONL of {context, source (or question), target (or answer)}; or use task + data_dir."""
    task: str = ""
    """A task whose own (c, s, t) to learn from: nq, tqa, zsre, wow, ropes, wiqa, quartz."""
    data_dir: str = ""
    """Folder of the task's files (with task); its fine-tuning dev/test questions are excluded."""
    knowledge_source: str = ""
    """zsre, wow: KILT's kilt_knowledgesource.json (default: data_dir/kilt_knowledgesource.json)."""
    model: str = "facebook/bart-base"
    """BART to start from (its embeddings also initialise the policy's frozen embedding)."""
    tokenizer: str = ""
    """Tokenizer; default: the model's."""
    output_dir: str = "runs/policy_meta"
    """Checkpoint folder for `meta_v1`."""
    steps: int = 1000
    """Meta steps."""
    batch_size: int = 8
    """(context, question, answer) triples per meta step."""
    pretrain_lr: float = 1e-4
    """Inner pre-training SGD step size."""
    finetune_lr: float = 1e-4
    """Inner fine-tuning SGD step size."""
    policy_lr: float = 1e-3
    """Adam learning rate of the policy."""
    tau: float = 1.0
    """Gumbel-softmax temperature."""
    beta: float = 1.0
    """β: weight of the budget regulariser L_reg (Eq. 7; in squared token counts)."""
    gamma: float = 0.15
    """γ: the mask budget, a share of each sequence's tokens."""
    eps: float = 0.05
    """ε: no penalty while a sequence's masked tokens are within ε·l(x) of γ·l(x)."""
    hidden: int = 512
    """Policy hidden size (512: ~40 M parameters with BART-base's embeddings, the paper's)."""
    max_length: int = 128
    """Context tokens."""
    max_source_length: int = 128
    """Source tokens of the inner fine-tuning step."""
    max_target_length: int = 64
    """Target tokens of the inner fine-tuning step."""
    outer_loss: Literal["difference", "after"] = "difference"
    """difference: L_ft(θ2) − L_ft(θ1), the paper's; after: L_ft(θ2) alone (plain MAML).
    To first order the difference is −lr_ft·‖∇L_ft(θ1)‖², which does not reward a mask that
    makes θ1 better at the task; `after` does (see the tests)."""
    target_prefix_space: bool = False
    """Encode answers as " answer", with the tokens they have inside the context."""
    backend: Literal["higher", "func"] = "higher"
    """Differentiable inner loop: higher (the paper's) or torch.func.functional_call."""
    seed: int = 0
    """Seed for sampling, order and initialisation."""
    log_every: int = 10
    """Log every N meta steps."""

    def __post_init__(self):
        from train.policy_sources import POLICY_TASKS

        if not self.examples and not (self.task and self.data_dir):
            raise ValueError(
                "give examples (a JSONL of context, source, target) or task and data_dir"
            )
        if self.task and self.task not in POLICY_TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(POLICY_TASKS)}")
        if self.outer_loss not in ("difference", "after"):
            raise ValueError(f"outer_loss must be difference or after, got {self.outer_loss!r}")
        if self.backend not in ("higher", "func"):
            raise ValueError(f"backend must be higher or func, got {self.backend!r}")
        for key in ("steps", "batch_size", "hidden", "max_length", "max_source_length",
                    "max_target_length"):  # fmt: skip
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if self.tau <= 0 or not 0 <= self.gamma <= 1 or self.eps < 0:
            raise ValueError("tau must be > 0, gamma in [0, 1], eps >= 0")


def make_batch(tok, examples, max_length: int, prefix_space: bool = False,
               source_length: int = 128, target_length: int = 64) -> dict:  # fmt: skip
    """Tensors of a batch of (c, s, t): the context to mask, source and target."""
    from maskpt.core.batching import pad, pad_ids

    pre = " " if prefix_space else ""
    ctx = tok([e.context for e in examples], truncation=True, max_length=max_length)["input_ids"]
    q = tok([e.source for e in examples], truncation=True, max_length=source_length)["input_ids"]
    a = tok([pre + e.target for e in examples], truncation=True,
            max_length=target_length)["input_ids"]  # fmt: skip
    ids, att = pad_ids(ctx, tok.pad_token_id)
    q_ids, q_att = pad_ids(q, tok.pad_token_id)
    special = torch.tensor([tok.bos_token_id, tok.eos_token_id, tok.pad_token_id])
    return {
        "ctx": ids,
        "ctx_att": att,
        "ctx_labels": pad(ctx, -100),
        "content": (~torch.isin(ids, special)).float(),
        "q": q_ids,
        "q_att": q_att,
        "a": pad(a, -100),
    }


def _mixed_embeddings(embed, ids, d, mask_id):
    """(1 - d) E[x] + d E[<mask>] with the given (possibly fast) embedding module."""
    ex = embed(ids)
    em = embed(torch.full_like(ids, mask_id))
    return (1 - d)[..., None] * ex + d[..., None] * em


def _outer(cfg: MetaConfig, l_ft1, l_ft2):
    return l_ft2 - l_ft1 if cfg.outer_loss == "difference" else l_ft2


def meta_step(model, masker, batch, cfg: MetaConfig, mask_id: int, gen: torch.Generator):
    """One step of Algorithm 1. Leaves gradients on the policy's parameters,
    sets the model to theta(p,1), and returns the logged quantities."""
    from policies.networks import budget_regulariser, gumbel_mask

    logits = masker(batch["ctx"])
    d = gumbel_mask(logits, cfg.tau, gen) * batch["content"]
    rate = d.sum() / batch["content"].sum()
    reg = budget_regulariser(d, batch["content"], cfg.gamma, cfg.eps)
    row_rate = d.sum(1) / batch["content"].sum(1).clamp_min(1)
    ft_inputs = {"input_ids": batch["q"], "attention_mask": batch["q_att"], "labels": batch["a"]}
    if cfg.backend == "higher":
        import higher

        inner = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr)
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            embeds = _mixed_embeddings(fmodel.model.encoder.embed_tokens, batch["ctx"], d, mask_id)
            l_pre = fmodel(inputs_embeds=embeds, attention_mask=batch["ctx_att"],
                           labels=batch["ctx_labels"]).loss  # fmt: skip
            diffopt.step(l_pre)
            l_ft1 = fmodel(**ft_inputs).loss
            diffopt.step(l_ft1, override={"lr": [cfg.finetune_lr]})
            l_ft2 = fmodel(**ft_inputs).loss
            meta = _outer(cfg, l_ft1, l_ft2) + cfg.beta * reg
            meta.backward()
            theta1 = [p.detach().clone() for p in fmodel.parameters(time=1)]
        with torch.no_grad():
            for p, new in zip(model.parameters(), theta1, strict=True):
                p.copy_(new)
    else:
        from torch.func import functional_call

        names = [n for n, _ in model.named_parameters()]
        params = dict(model.named_parameters())

        def sgd(theta, loss, lr):
            grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True,
                                        allow_unused=True)  # fmt: skip
            return {
                n: p if g is None else p - lr * g
                for (n, p), g in zip(theta.items(), grads, strict=True)
            }

        scale = getattr(model.model.encoder.embed_tokens, "embed_scale", 1.0)
        w = params["model.shared.weight"]

        def embed(ids):
            return torch.nn.functional.embedding(ids, w) * scale

        embeds = _mixed_embeddings(embed, batch["ctx"], d, mask_id)
        l_pre = functional_call(model, params, (), {"inputs_embeds": embeds,
                                "attention_mask": batch["ctx_att"],
                                "labels": batch["ctx_labels"]}).loss  # fmt: skip
        theta1 = sgd(params, l_pre, cfg.pretrain_lr)
        l_ft1 = functional_call(model, theta1, (), ft_inputs).loss
        theta2 = sgd(theta1, l_ft1, cfg.finetune_lr)
        l_ft2 = functional_call(model, theta2, (), ft_inputs).loss
        meta = _outer(cfg, l_ft1, l_ft2) + cfg.beta * reg
        meta.backward()
        with torch.no_grad():
            for n in names:
                params[n].copy_(theta1[n].detach())
    model.zero_grad(set_to_none=True)
    grad_norm = torch.sqrt(sum((p.grad**2).sum() for p in masker.parameters()
                               if p.grad is not None))  # fmt: skip
    return {"meta_loss": meta.item(), "l_pre": l_pre.item(), "l_ft1": l_ft1.item(),
            "l_ft2": l_ft2.item(), "reg": reg.item(), "mask_rate": rate.item(),
            "policy_grad_norm": grad_norm.item(), "mask": d.detach(),
            "rows_in_budget": ((row_rate - cfg.gamma).abs() <= cfg.eps).float().mean().item()}  # fmt: skip


def load_models(cfg: MetaConfig):
    from transformers import AutoTokenizer, BartForConditionalGeneration

    from policies.networks import MetaMasker

    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    model = BartForConditionalGeneration.from_pretrained(cfg.model, attn_implementation="eager")
    torch.manual_seed(cfg.seed)
    emb = model.get_input_embeddings().weight
    masker = MetaMasker(emb, hidden=cfg.hidden, pad_id=tok.pad_token_id)
    args = {"embedding_shape": list(emb.shape), "hidden": cfg.hidden, "pad_id": tok.pad_token_id}
    return tok, model, masker, args


def train(cfg: MetaConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    from maskpt.core.seeding import stable_rng, stable_seed
    from policies import checkpoint
    from train.policy_sources import load_examples

    dropped: Counter = Counter()
    examples = load_examples(cfg.examples, cfg.task, cfg.data_dir, cfg.knowledge_source, dropped)
    dropped["no_source"] += sum(1 for e in examples if not e.source)
    examples = [e for e in examples if e.source]
    if not examples:
        raise ValueError(f"{cfg.examples or cfg.task}: no usable (context, source, target) "
                         f"example (dropped: {dict(+dropped)})")  # fmt: skip
    tok, model, masker, args = load_models(cfg)
    params = sum(p.numel() for p in masker.parameters())
    trainable = sum(p.numel() for p in masker.parameters() if p.requires_grad)
    if progress:
        print(f"meta_v1 policy: {params / 1e6:.1f} M parameters ({trainable / 1e6:.2f} M trained, "
              f"the embedding frozen); {len(examples)} examples, dropped {dict(+dropped)}")  # fmt: skip
    model.train()
    opt = torch.optim.Adam([p for p in masker.parameters() if p.requires_grad], lr=cfg.policy_lr)
    gen = torch.Generator().manual_seed(stable_seed("meta-gumbel", cfg.seed))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "train_log.jsonl").open("w")
    last: dict = {}
    for step in tqdm(range(cfg.steps), desc="train meta_v1", disable=not progress):
        rng = stable_rng("meta-batch", cfg.seed, step)
        pick = rng.choice(len(examples), size=min(cfg.batch_size, len(examples)), replace=False)
        batch = make_batch(tok, [examples[i] for i in pick], cfg.max_length,
                           cfg.target_prefix_space, cfg.max_source_length,
                           cfg.max_target_length)  # fmt: skip
        torch.manual_seed(stable_seed("meta-dropout", cfg.seed, step))
        opt.zero_grad(set_to_none=True)
        rec = meta_step(model, masker, batch, cfg, tok.mask_token_id, gen)
        rec.pop("mask")
        if not np.isfinite(rec["meta_loss"]):
            from train.distributed import NonFiniteLoss

            raise NonFiniteLoss(f"non-finite meta loss at step {step + 1}: {rec}")
        opt.step()
        last = {"step": step + 1, **rec}
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            log.write(json.dumps(last) + "\n")
            log.flush()
    log.close()
    checkpoint.save(out, "meta_v1", masker, args, tok,
                    {**last, "examples": len(examples), "dropped": dict(+dropped),
                     "parameters": params})  # fmt: skip
    return last


def config_args():
    from maskpt.core.cli_args import ConfigArgs

    return ConfigArgs(MetaConfig, "maskpt train-policy meta", __doc__)


def main(argv=None) -> int:
    def run(cfg: MetaConfig, _) -> int:
        last = train(cfg)
        print(f"meta_v1 checkpoint in {cfg.output_dir}: last meta loss {last['meta_loss']:.4f}, "
              f"mask rate {last['mask_rate']:.3f}")  # fmt: skip
        return 0

    return config_args().main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
