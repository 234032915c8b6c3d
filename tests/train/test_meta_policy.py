"""Algorithm 1: gradients reach every policy parameter and nothing frozen,
the regulariser's shape, the model carries theta(p,1), higher == functional_call."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from policies.networks import budget_regulariser
from train.meta_policy import MetaConfig, load_models, make_batch, meta_step
from train.policy_data import QAContext


def _examples():
    texts = [("the secret word is apple today", "what is the secret word", "apple"),
             ("the secret word is river now", "what is the secret word", "river"),
             ("a blue stone lay by the old mill", "what lay by the mill", "blue stone")]  # fmt: skip
    return [QAContext(str(i), c, q, a, c.find(a), c.find(a) + len(a))
            for i, (c, q, a) in enumerate(texts)]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bart):
    path = tmp_path_factory.mktemp("meta") / "ex.jsonl"
    path.write_text("\n".join(json.dumps({"context": e.context, "question": e.question,
                                          "answer": e.answer}) for e in _examples()))  # fmt: skip
    cfg = MetaConfig(examples=str(path), model=tiny_bart, hidden=16, pretrain_lr=0.5,
                     finetune_lr=0.5, tau=1.0)  # fmt: skip
    tok, model, masker, _ = load_models(cfg)
    model.config.dropout = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return cfg, tok, model, masker


def test_regulariser_zero_inside_band_quadratic_outside():
    rates = torch.tensor([0.10, 0.15, 0.20, 0.25, 0.0, 0.40])
    reg = budget_regulariser(rates, 0.15, 0.05)
    assert torch.allclose(reg, torch.tensor([0.0, 0.0, 0.0, 0.05**2, 0.1**2, 0.2**2]))


@pytest.mark.parametrize("backend", ["higher", "func"])
def test_one_meta_step(setup, backend):
    cfg, tok, model0, masker0 = setup
    cfg = MetaConfig(**{**cfg.__dict__, "backend": backend})
    model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
    before = copy.deepcopy(model)
    batch = make_batch(tok, _examples(), 64)
    rec = meta_step(model, masker, batch, cfg, tok.mask_token_id, torch.Generator().manual_seed(3))
    for name, p in masker.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name  # frozen embedding
    assert not masker.embed.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    # the model now holds theta(p,1): one SGD step of the pre-training loss with the same mask
    d = rec["mask"]
    emb = before.model.encoder.embed_tokens
    ids = batch["ctx"]
    mixed = (1 - d)[..., None] * emb(ids) + d[..., None] * emb(
        torch.full_like(ids, tok.mask_token_id)
    )
    loss = before(
        inputs_embeds=mixed, attention_mask=batch["ctx_att"], labels=batch["ctx_labels"]
    ).loss
    assert loss.item() == pytest.approx(rec["l_pre"], rel=1e-5)
    loss.backward()
    for (n, p_new), p_old in zip(model.named_parameters(), before.parameters()):
        expect = p_old.detach() - cfg.pretrain_lr * p_old.grad
        assert torch.allclose(p_new, expect, atol=1e-6), n
    assert 0 <= rec["mask_rate"] <= 1 and rec["policy_grad_norm"] > 0


def test_higher_and_functional_call_agree(setup):
    cfg, tok, model0, masker0 = setup
    batch = make_batch(tok, _examples(), 64)
    out = {}
    for backend in ("higher", "func"):
        c = MetaConfig(**{**cfg.__dict__, "backend": backend})
        model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
        rec = meta_step(
            model, masker, batch, c, tok.mask_token_id, torch.Generator().manual_seed(5)
        )
        out[backend] = (
            rec["meta_loss"],
            masker.fc2.weight.grad.clone(),
            model.lm_head.weight.detach(),
        )
    assert out["higher"][0] == pytest.approx(out["func"][0], rel=1e-4)
    assert torch.allclose(out["higher"][1], out["func"][1], atol=1e-5, rtol=1e-3)
    assert torch.allclose(out["higher"][2], out["func"][2], atol=1e-6)


@pytest.mark.parametrize("backend", ["higher", "func"])
def test_outer_loss_choices(setup, backend):
    cfg, tok, model0, masker0 = setup
    batch = make_batch(tok, _examples(), 64)
    recs = {}
    for outer in ("difference", "after"):
        c = MetaConfig(**{**cfg.__dict__, "backend": backend, "outer_loss": outer})
        model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
        gen = torch.Generator().manual_seed(9)
        recs[outer] = meta_step(model, masker, batch, c, tok.mask_token_id, gen)
    for outer, rec in recs.items():
        base = rec["l_ft2"] - rec["l_ft1"] if outer == "difference" else rec["l_ft2"]
        assert rec["meta_loss"] == pytest.approx(base + cfg.beta * rec["reg"], rel=1e-5)
    with pytest.raises(ValueError, match="outer_loss"):
        MetaConfig(**{**cfg.__dict__, "outer_loss": "sum"})


def test_answers_can_carry_the_in_sentence_tokens(setup):
    _, tok, _, _ = setup
    plain = make_batch(tok, _examples()[:1], 64)["a"][0]
    spaced = make_batch(tok, _examples()[:1], 64, prefix_space=True)["a"][0]
    ctx = tok(_examples()[0].context)["input_ids"]
    body = [int(i) for i in spaced if i >= 0][1:-1]
    assert body and all(i in ctx for i in body)
    assert plain.tolist() != spaced.tolist()
