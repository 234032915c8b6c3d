"""Train the meta-learned masking policy (`meta_v1`): the paper's Algorithm 1.

    maskpt train-policy meta --examples contexts.jsonl --model facebook/bart-base --output-dir policies/meta
    maskpt train-policy meta --task wow --data-dir data/wow knowledge_source=kilt_knowledgesource.json
    maskpt train-policy meta --task synth --data-dir runs/demo/world/qa --model runs/demo/pretrain/general/hf

Examples are (c, s, t) (`train/policy_data.py`): a context paragraph the
dataset provides, and the fine-tuning source and target — from a JSONL file
or a task's own files (NQ, TQA, zsRE, WoW, ROPES, WIQA, QuaRTz, the demo's
synth), none of them needing t to occur in c. One meta step on a batch:
1. the policy phi gives (keep, mask) logits per context token; a
   straight-through hard Gumbel-softmax sample d (tau) picks the masks;
2. the source embeddings are (1 - d) E[x] + d E[<mask>]; `inner_steps` SGD
   steps of pre-training (reconstruct the full context) give theta(p,k)
   (the paper: one);
3. one inner SGD step of fine-tuning on (s -> t) gives theta2;
4. outer loss L' = L_ft(theta2) - L_ft(theta(p,k)) (`difference`, the
   paper's) or L_ft(theta2) (`after`), plus beta * L_reg, the paper's Eq. 7
   per sequence in token counts,
   L_reg = δ[|γ·l(x) − l(d)| > ε·l(x)] · (γ·l(x) − l(d))², averaged over the
   batch (γ 0.15, ε 0.05); the gradient flows through the inner steps
   (`train/meta_inner.py`: `higher` or torch.func) into phi only;
5. phi is updated (Adam), and the model carries theta(p,k) forward.

Where the defaults depart from the paper's letter, and why (measured with
`bench/meta_signal.py`; README "The meta-learned policy"):
- `budget: expected` counts l(d) as the expected count Σp_i, not the drawn
  mask's: on rows of a few dozen tokens the Bernoulli count's spread is as
  wide as the band, so the sampled form penalises 30-50% of rows on every
  step and its noise, not the meta signal, steers the policy;
  `budget: sampled` is the paper's form;
- `start_at_budget`: the policy starts at p(mask) = γ everywhere, inside the
  band, instead of ~0.5;
- `outer_loss: after` (L_ft(θ2)) instead of the paper's difference, and
  inner steps of 0.05: on the demo world the difference moved the answer
  probe below 1 at every setting tried, `after` above 1.5 on 3 of 3 seeds.

Diagnostics (train_log.jsonl and TensorBoard under OUTPUT_DIR/runs/, means
over each window of `log_every` steps; the first step is logged alone):
l_pre, l_ft1 / l_ft2 (fine-tuning loss before / after the inner fine-tuning
step), l_diff (the paper's L'), outer (the loss optimised), reg and beta_reg,
grad_norm_meta / grad_norm_reg (the two terms' gradient norms on phi),
rows_in_budget (drawn masks) and rows_in_budget_expected (Σp_i) in γ ± ε;
outer_frozen / meta_gain: the outer loss a frozen copy of the initial policy
gets at the same θ, batch, Gumbel noise and dropout, minus the policy's
(above 0: the policy's masks help more than a blind policy's — the raw
outer loss moves with θ and says nothing alone); and the answer probe
(`train/meta_probe.py`) on held-out examples: probe_ratio against
probe_ratio_frozen, the initial policy's.

BART must use eager attention (double backward).
"""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from maskpt.core.batching import pad, pad_ids
from maskpt.core.cli_args import ConfigArgs
from maskpt.core.config import require_at_least_one
from maskpt.core.seeding import stable_rng, stable_seed
from policies import checkpoint
from policies.networks import MetaMasker, budget_regulariser, gumbel_mask, gumbel_noise
from train.distributed import NonFiniteLoss
from train.meta_inner import BACKENDS
from train.meta_probe import PROBE_MIN, build_probe, probe_ratio, split_probe
from train.policy_sources import POLICY_TASKS, load_examples
from train.tasks import TaskDataError


@dataclass(frozen=True)
class MetaConfig:
    examples: str = ""
    """JSONL of {context, source (or question), target (or answer)}; or use task + data_dir."""
    task: str = ""
    """A task whose own (c, s, t) to learn from: nq, tqa, zsre, wow, ropes, wiqa, quartz
    (or synth, the demo's world, from its policy_examples.jsonl)."""
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
    pretrain_lr: float = 0.05
    """Inner pre-training SGD step size (large enough to move θ measurably; if the log's l_ft2
    is not below l_ft1, the inner steps are too large for the model: lower both)."""
    finetune_lr: float = 0.05
    """Inner fine-tuning SGD step size."""
    policy_lr: float = 1e-3
    """Adam learning rate of the policy."""
    tau: float = 1.0
    """Gumbel-softmax temperature."""
    beta: float = 1.0
    """β: weight of the budget regulariser L_reg (Eq. 7; in squared token counts)."""
    beta_scale: Literal["fixed", "meta"] = "fixed"
    """fixed: β·L_reg as written; meta: L_reg's gradient rescaled to β times the norm of the
    meta gradient at every step (the two terms commensurate whatever the learning rates)."""
    beta_warmup: int = 0
    """Steps over which β ramps linearly from 0 (0: full β from the first step)."""
    budget: Literal["expected", "sampled"] = "expected"
    """What Eq. 7 counts as l(d): expected, the expected count Σp_i (no sampling noise: a row
    inside the band gets no gradient; a deviation from the paper); sampled, the drawn hard
    mask's count (the paper's form, noisy on short rows)."""
    gamma: float = 0.15
    """γ: the mask budget, a share of each sequence's tokens."""
    eps: float = 0.05
    """ε: no penalty while a sequence's masked tokens are within ε·l(x) of γ·l(x)."""
    start_at_budget: bool = True
    """Initialise the policy so every token starts at p(mask) = γ (inside the band); false: the
    default initialisation (p ≈ 0.5, which the budget term must first pull down)."""
    inner_steps: int = 1
    """SGD steps of pre-training on the masked batch before the fine-tuning step (paper: 1)."""
    probe_examples: int = 64
    """Examples held out of training for the answer probe (`train/meta_probe.py`); 0: none."""
    hidden: int = 512
    """Policy hidden size (512: ~40 M parameters with BART-base's embeddings, the paper's)."""
    max_length: int = 128
    """Context tokens."""
    max_source_length: int = 128
    """Source tokens of the inner fine-tuning step."""
    max_target_length: int = 64
    """Target tokens of the inner fine-tuning step."""
    outer_loss: Literal["difference", "after"] = "after"
    """after: L_ft(θ2), the fine-tuning loss after the inner steps (plain MAML; the default:
    the only form measured to learn, bench/meta_signal.py); difference: L_ft(θ2) − L_ft(θ1),
    the paper's. To first order the difference is −lr_ft·‖∇L_ft(θ1)‖²: it rewards masks that
    leave θ1 *worse* at the task, and measured it pushed the policy away from answers."""
    target_prefix_space: bool = False
    """Encode answers as " answer", with the tokens they have inside the context."""
    backend: Literal["higher", "func"] = "higher"
    """Differentiable inner loop: higher (the paper's) or torch.func.functional_call."""
    seed: int = 0
    """Seed for sampling, order and initialisation."""
    log_every: int = 10
    """Log every N meta steps."""

    def __post_init__(self):
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
        require_at_least_one(
            self,
            "steps",
            "batch_size",
            "hidden",
            "max_length",
            "max_source_length",
            "max_target_length",
            "log_every",
        )
        if self.tau <= 0 or not 0 <= self.gamma <= 1 or self.eps < 0:
            raise ValueError("tau must be > 0, gamma in [0, 1], eps >= 0")
        if self.budget not in ("expected", "sampled"):
            raise ValueError(f"budget must be expected or sampled, got {self.budget!r}")
        if self.beta_scale not in ("fixed", "meta"):
            raise ValueError(f"beta_scale must be fixed or meta, got {self.beta_scale!r}")
        if self.inner_steps < 1 or self.beta_warmup < 0 or self.probe_examples < 0 or self.beta < 0:
            raise ValueError("inner_steps must be >= 1; beta, beta_warmup, probe_examples >= 0")


def make_batch(
    tok,
    examples,
    max_length: int,
    prefix_space: bool = False,
    source_length: int = 128,
    target_length: int = 64,
) -> dict:
    """Tensors of a batch of (c, s, t): the context to mask, source and target."""

    pre = " " if prefix_space else ""
    ctx = tok([e.context for e in examples], truncation=True, max_length=max_length)["input_ids"]
    q = tok([e.source for e in examples], truncation=True, max_length=source_length)["input_ids"]
    a = tok([pre + e.target for e in examples], truncation=True, max_length=target_length)[
        "input_ids"
    ]
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


def _outer(cfg: MetaConfig, l_ft1, l_ft2):
    return l_ft2 - l_ft1 if cfg.outer_loss == "difference" else l_ft2


def _norm(grads) -> float:
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def _policy_mask(masker, batch: dict, cfg: MetaConfig, noise: torch.Tensor):
    """(hard mask d, mask probabilities, L_reg) of the policy on the batch's contexts."""

    logits = masker(batch["ctx"])
    content = batch["content"]
    d = gumbel_mask(logits, cfg.tau, noise) * content
    probs = torch.softmax(logits, dim=-1)[..., 1] * content
    counted = probs if cfg.budget == "expected" else d
    return d, probs, budget_regulariser(counted, content, cfg.gamma, cfg.eps)


def meta_step(
    model,
    masker,
    batch,
    cfg: MetaConfig,
    mask_id: int,
    gen: torch.Generator,
    frozen=None,
    beta: float | None = None,
) -> dict:
    """One step of Algorithm 1. Leaves gradients on the policy's parameters,
    sets the model to theta(p,k), and returns the logged quantities.
    `frozen` (a copy of the initial policy): also the outer loss its mask
    gives at the same θ, batch and Gumbel noise (`outer_frozen`), the
    baseline that says whether the policy's masks beat a blind one's.
    `beta` overrides cfg.beta (the warm-up's ramp)."""

    beta = cfg.beta if beta is None else beta
    inner = BACKENDS[cfg.backend]
    args = (mask_id, cfg.inner_steps, cfg.pretrain_lr, cfg.finetune_lr)
    noise = gumbel_noise((*batch["ctx"].shape, 2), gen)
    rec: dict = {}
    if frozen is not None:
        state = torch.random.get_rng_state()
        with torch.no_grad():
            d0, _, _ = _policy_mask(frozen, batch, cfg, noise)
        r0 = inner(model, batch, d0, *args, create_graph=False)
        rec["outer_frozen"] = _outer(cfg, r0.l_ft1, r0.l_ft2).item()
        torch.random.set_rng_state(state)  # the same dropout draws for the policy's pass
    d, probs, reg = _policy_mask(masker, batch, cfg, noise)
    trained = [p for p in masker.parameters() if p.requires_grad]
    reg_grads = torch.autograd.grad(reg, trained, retain_graph=True, allow_unused=True)
    r = inner(model, batch, d, *args)
    outer = _outer(cfg, r.l_ft1, r.l_ft2)
    outer.backward()
    meta_norm = _norm([p.grad for p in trained])
    reg_norm = _norm(reg_grads)
    scale = beta
    if cfg.beta_scale == "meta" and reg_norm > 0:
        scale = beta * meta_norm / reg_norm  # β·L_reg's gradient is β times the meta gradient's
    for p, g in zip(trained, reg_grads, strict=True):
        if g is not None:
            p.grad = scale * g if p.grad is None else p.grad + scale * g
    with torch.no_grad():
        for p, new in zip(model.parameters(), r.theta, strict=True):
            p.copy_(new)
    model.zero_grad(set_to_none=True)
    content = batch["content"]
    length = content.sum(1).clamp_min(1)

    def in_band(count: torch.Tensor) -> float:
        return ((count / length - cfg.gamma).abs() <= cfg.eps).float().mean().item()

    if "outer_frozen" in rec:
        rec["meta_gain"] = rec["outer_frozen"] - outer.item()
    rec.update(
        {
            "meta_loss": outer.item() + scale * reg.item(),
            "outer": outer.item(),
            "l_pre": r.l_pre.item(),
            "l_ft1": r.l_ft1.item(),
            "l_ft2": r.l_ft2.item(),
            "l_diff": (r.l_ft2 - r.l_ft1).item(),
            "reg": reg.item(),
            "beta_reg": scale * reg.item(),
            "beta_effective": scale,
            "mask_rate": (d.sum() / content.sum()).item(),
            "expected_rate": (probs.sum() / content.sum()).item(),
            "grad_norm_meta": meta_norm,
            "grad_norm_reg": scale * reg_norm,
            "policy_grad_norm": _norm([p.grad for p in trained]),
            "rows_in_budget": in_band(d.sum(1)),
            "rows_in_budget_expected": in_band(probs.sum(1)),
            "mask": d.detach(),
        }
    )
    return rec


def load_models(cfg: MetaConfig):
    from transformers import AutoTokenizer, BartForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    model = BartForConditionalGeneration.from_pretrained(cfg.model, attn_implementation="eager")
    torch.manual_seed(cfg.seed)
    emb = model.get_input_embeddings().weight
    masker = MetaMasker(emb, hidden=cfg.hidden, pad_id=tok.pad_token_id)
    if cfg.start_at_budget:
        masker.start_at(cfg.gamma)
    args = {"embedding_shape": list(emb.shape), "hidden": cfg.hidden, "pad_id": tok.pad_token_id}
    return tok, model, masker, args


def load_data(cfg: MetaConfig) -> tuple[list, list, Counter]:
    """(training examples, probe examples held out of them, drop counts)."""

    dropped: Counter = Counter()
    examples = load_examples(cfg.examples, cfg.task, cfg.data_dir, cfg.knowledge_source, dropped)
    dropped["no_source"] += sum(1 for e in examples if not e.source)
    examples = [e for e in examples if e.source]
    held = min(cfg.probe_examples, len(examples) // 4)  # never more than a quarter
    train_set, probe = split_probe(examples, held, cfg.seed)
    if not train_set:
        raise TaskDataError(
            f"{cfg.examples or cfg.task}: no usable (context, source, target) "
            f"example (dropped: {dict(+dropped)})"
        )
    return train_set, probe, dropped


class MetaLog:
    """train_log.jsonl and TensorBoard events (OUT/runs/) of the logged steps."""

    def __init__(self, out: Path):
        self.file = (out / "train_log.jsonl").open("w")
        self.tb = SummaryWriter(str(out / "runs"))

    def write(self, rec: dict) -> None:
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        for key, value in rec.items():
            if key != "step" and isinstance(value, int | float):
                self.tb.add_scalar(f"meta/{key}", value, rec["step"])

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def _window_mean(window: list[dict]) -> dict:
    keys = {k for r in window for k, v in r.items() if isinstance(v, int | float)}
    return {k: float(np.mean([r[k] for r in window if k in r])) for k in sorted(keys)}


def train(cfg: MetaConfig, progress: bool = True) -> dict:
    """Algorithm 1 for cfg.steps; returns the last logged record (means over
    its window of steps, the probe at that step) and saves the checkpoint."""

    examples, held, dropped = load_data(cfg)
    tok, model, masker, args = load_models(cfg)
    frozen = copy.deepcopy(masker).requires_grad_(False)
    probe = build_probe(tok, held, cfg.max_length)
    start_probe = probe_ratio(masker, probe) if probe else {}
    params = sum(p.numel() for p in masker.parameters())
    trainable = sum(p.numel() for p in masker.parameters() if p.requires_grad)
    if progress:
        print(
            f"meta_v1 policy: {params / 1e6:.1f} M parameters ({trainable / 1e6:.2f} M trained, "
            f"the embedding frozen); {len(examples)} examples, dropped {dict(+dropped)}"
        )
        print(
            f"answer probe: {probe['examples']} held-out contexts, ratio at the start "
            f"{start_probe['probe_ratio']:.3f}"
            if probe
            else f"answer probe: none (fewer than {PROBE_MIN} held-out examples have their target "
            "in the context: the probe needs extractive data)"
        )
    model.train()
    opt = torch.optim.Adam([p for p in masker.parameters() if p.requires_grad], lr=cfg.policy_lr)
    gen = torch.Generator().manual_seed(stable_seed("meta-gumbel", cfg.seed))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = MetaLog(out)
    last: dict = {}
    window: list[dict] = []
    diffs: list[float] = []
    for step in tqdm(range(cfg.steps), desc="train meta_v1", disable=not progress):
        rng = stable_rng("meta-batch", cfg.seed, step)
        pick = rng.choice(len(examples), size=min(cfg.batch_size, len(examples)), replace=False)
        batch = make_batch(
            tok,
            [examples[i] for i in pick],
            cfg.max_length,
            cfg.target_prefix_space,
            cfg.max_source_length,
            cfg.max_target_length,
        )
        torch.manual_seed(stable_seed("meta-dropout", cfg.seed, step))
        opt.zero_grad(set_to_none=True)
        logged = step == 0 or (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps
        beta = cfg.beta * min(1.0, (step + 1) / cfg.beta_warmup) if cfg.beta_warmup else cfg.beta
        rec = meta_step(
            model, masker, batch, cfg, tok.mask_token_id, gen, frozen if logged else None, beta
        )
        rec.pop("mask")
        if not np.isfinite(rec["meta_loss"]):
            raise NonFiniteLoss(f"non-finite meta loss at step {step + 1}: {rec}")
        opt.step()
        window.append(rec)
        diffs.append(rec["l_diff"])
        if logged:
            last = {"step": step + 1, **_window_mean(window)}
            if probe:
                last.update(probe_ratio(masker, probe))
                last["probe_ratio_frozen"] = start_probe["probe_ratio"]
            log.write(last)
            window = []
    log.close()
    if float(np.mean(diffs)) >= 0:
        print(
            f"warning: the inner fine-tuning step did not lower the fine-tuning loss on "
            f"average (mean l_ft2 - l_ft1 = {np.mean(diffs):+.4f}): the inner steps are too "
            "large for this model; lower pretrain_lr and finetune_lr",
            file=sys.stderr,
        )
    summary = {
        **last,
        "mean_l_diff": float(np.mean(diffs)),
        "examples": len(examples),
        "probe_examples": probe["examples"] if probe else 0,
        "dropped": dict(+dropped),
        "parameters": params,
    }
    checkpoint.save(out, "meta_v1", masker, args, tok, summary)
    return summary


def config_args():
    return ConfigArgs(MetaConfig, "maskpt train-policy meta", __doc__)


def main(argv=None) -> int:
    def run(cfg: MetaConfig, _) -> int:
        last = train(cfg)
        print(
            f"meta_v1 checkpoint in {cfg.output_dir}: outer loss {last['outer']:.4f} "
            f"(L' = l_ft2 - l_ft1 {last['l_diff']:.4f}), mask rate {last['mask_rate']:.3f}, "
            f"rows in the band {last['rows_in_budget']:.2f}"
        )
        if "probe_ratio" in last:
            print(
                f"answer probe on {last['probe_examples']} held-out contexts: p(mask) on "
                f"answers / on other tokens = {last['probe_ratio']:.3f} (at the start "
                f"{last['probe_ratio_frozen']:.3f}; above 1: the policy prefers answers)"
            )
        else:
            print("answer probe: none (the targets do not occur in the held-out contexts)")
        return 0

    return config_args().main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
