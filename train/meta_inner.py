"""The meta step's differentiable inner loop (Algorithm 1, lines 4-6), on
two backends that compute the same thing:

- `higher` (the paper's): `higher.innerloop_ctx` over the model with SGD;
- `func`: torch.func.functional_call with hand-written SGD steps.

Both take the policy's mask d [B, L] (0/1 forward, straight-through
gradient), build the source embeddings (1 - d) E[x] + d E[<mask>], take
`steps` SGD steps of the pre-training loss (reconstruct the context) to
θ(p,k), then one SGD step of the fine-tuning loss to θ2, and return the
losses with θ(p,k) detached. With `create_graph` the outer loss can be
back-propagated through every step into d; without it (the frozen-policy
baseline of the diagnostics) nothing is kept for a backward pass.
BART must use eager attention (SDPA has no double backward on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call


@dataclass
class InnerResult:
    l_pre: torch.Tensor
    """Pre-training loss at θ before the first inner step."""
    l_ft1: torch.Tensor
    """Fine-tuning loss at θ(p,k), before the inner fine-tuning step."""
    l_ft2: torch.Tensor
    """Fine-tuning loss at θ2, after it."""
    theta: list[torch.Tensor]
    """θ(p,k), detached, in `model.parameters()` order."""


def mixed_embeddings(embed, ids: torch.Tensor, d: torch.Tensor, mask_id: int) -> torch.Tensor:
    """(1 - d) E[x] + d E[<mask>] with the given (possibly fast) embedding module."""
    ex = embed(ids)
    em = embed(torch.full_like(ids, mask_id))
    return (1 - d)[..., None] * ex + d[..., None] * em


def _ft_inputs(batch: dict) -> dict:
    return {"input_ids": batch["q"], "attention_mask": batch["q_att"], "labels": batch["a"]}


def inner_higher(
    model,
    batch: dict,
    d: torch.Tensor,
    mask_id: int,
    steps: int,
    pretrain_lr: float,
    finetune_lr: float,
    create_graph: bool = True,
) -> InnerResult:
    import higher

    if not create_graph:
        return inner_func(model, batch, d, mask_id, steps, pretrain_lr, finetune_lr, False)
    inner = torch.optim.SGD(model.parameters(), lr=pretrain_lr)
    with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
        l_pre = None
        for _ in range(steps):
            embeds = mixed_embeddings(fmodel.model.encoder.embed_tokens, batch["ctx"], d, mask_id)
            loss = fmodel(
                inputs_embeds=embeds, attention_mask=batch["ctx_att"], labels=batch["ctx_labels"]
            ).loss
            l_pre = loss if l_pre is None else l_pre
            diffopt.step(loss)
        theta = [p.detach().clone() for p in fmodel.parameters(time=steps)]
        l_ft1 = fmodel(**_ft_inputs(batch)).loss
        diffopt.step(l_ft1, override={"lr": [finetune_lr]})
        l_ft2 = fmodel(**_ft_inputs(batch)).loss
    return InnerResult(l_pre, l_ft1, l_ft2, theta)


def inner_func(
    model,
    batch: dict,
    d: torch.Tensor,
    mask_id: int,
    steps: int,
    pretrain_lr: float,
    finetune_lr: float,
    create_graph: bool = True,
) -> InnerResult:
    names = [n for n, _ in model.named_parameters()]
    theta = dict(model.named_parameters())
    if not create_graph:
        theta = {n: p.detach().requires_grad_(True) for n, p in theta.items()}
        d = d.detach()

    def sgd(params: dict, loss: torch.Tensor, lr: float) -> dict:
        grads = torch.autograd.grad(
            loss, list(params.values()), create_graph=create_graph, allow_unused=True
        )
        new = {}
        for (n, p), g in zip(params.items(), grads, strict=True):
            q = p if g is None else p - lr * g
            new[n] = q if create_graph else q.detach().requires_grad_(True)
        return new

    scale = getattr(model.model.encoder.embed_tokens, "embed_scale", 1.0)
    l_pre = None
    for _ in range(steps):
        w = theta["model.shared.weight"]
        embeds = mixed_embeddings(
            lambda ids, w=w: torch.nn.functional.embedding(ids, w) * scale, batch["ctx"], d, mask_id
        )
        loss = functional_call(
            model,
            theta,
            (),
            {
                "inputs_embeds": embeds,
                "attention_mask": batch["ctx_att"],
                "labels": batch["ctx_labels"],
            },
        ).loss
        l_pre = loss if l_pre is None else l_pre
        theta = sgd(theta, loss, pretrain_lr)
    l_ft1 = functional_call(model, theta, (), _ft_inputs(batch)).loss
    theta2 = sgd(theta, l_ft1, finetune_lr)
    l_ft2 = functional_call(model, theta2, (), _ft_inputs(batch)).loss
    return InnerResult(l_pre, l_ft1, l_ft2, [theta[n].detach().clone() for n in names])


BACKENDS = {"higher": inner_higher, "func": inner_func}
