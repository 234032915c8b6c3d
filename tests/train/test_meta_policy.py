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


# --- the policy learns to mask the token that helps -----------------------------------

_CODES = {"zorb": "apple", "plim": "river", "quax": "stone", "vendo": "cloud", "trisk": "tiger",
          "molp": "maple", "yarn": "ocean", "fesk": "violet", "gulo": "candle", "nabi": "forest"}  # fmt: skip
_FILL = ["the", "a", "one", "old", "new", "small", "big", "green", "quiet", "loud", "early",
         "late"]  # fmt: skip


def _code_examples(n: int, seed: int) -> list[QAContext]:
    """Closed-book QA in miniature: "... the code of KEY is WORD ..." and "what
    is the code of KEY" -> WORD, with a fixed KEY -> WORD table. Masking WORD
    in pre-training is what teaches the table."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = rng.choice(sorted(_CODES))
        word = _CODES[key]
        pre = " ".join(rng.choices(_FILL, k=rng.randint(1, 4)))
        post = " ".join(rng.choices(_FILL, k=rng.randint(1, 4)))
        c = f"{pre} the code of {key} is {word} {post}"
        k = c.index(f" is {word} ") + 4
        out.append(QAContext(str(i), c, f"what is the code of {key}", word, k, k + len(word)))
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mask_probability_rises_on_the_helpful_token(tmp_path):
    """With `outer_loss=after`, answers prefixed as in the context, inner steps
    of 0.05 and a model that already copies its input, the policy's mask
    probability on the answer word rises relative to every other token while
    the budget regulariser holds the overall rate (so the absolute probability
    of every token falls from the initial 0.5). Measured: ratio 1.00 -> 1.21
    after 600 steps, 1.2-1.45 from step 200 to 1,500; the paper's `difference`
    gave 1.13 at 600. With inner steps of 0.5 the gradient on the answer's mask
    has the other sign: one large step on an unpredictable masked word hurts."""
    import random

    from maskpt.core.tokenizer import train_tokenizer
    from tests.helpers import save_tiny_bart

    examples = _code_examples(400, seed=0)
    tok = train_tokenizer([e.context for e in examples] + [e.question for e in examples],
                          tmp_path / "tok", vocab_size=400, min_frequency=1)  # fmt: skip
    path = tmp_path / "ex.jsonl"
    path.write_text("")
    cfg = MetaConfig(examples=str(path), model=save_tiny_bart(tok, tmp_path / "bart", d_model=64),
                     hidden=32, pretrain_lr=0.05, finetune_lr=0.05, policy_lr=3e-3, beta=10.0,
                     outer_loss="after", target_prefix_space=True, backend="func")  # fmt: skip
    torch.manual_seed(0)
    tok, model, masker, _ = load_models(cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    rng = random.Random(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(1500):  # learn to copy: an unmasked word then carries no training signal
        b = make_batch(tok, rng.sample(examples, 32), 64)
        loss = model(input_ids=b["ctx"], attention_mask=b["ctx_att"], labels=b["ctx_labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    answers = torch.tensor(sorted({tok(" " + w, add_special_tokens=False)["input_ids"][0]
                                   for w in _CODES.values()}))  # fmt: skip
    probe = make_batch(tok, examples[:200], 64)
    is_answer = torch.isin(probe["ctx"], answers)
    other = (probe["content"] > 0) & ~is_answer

    def ratio() -> float:
        with torch.no_grad():
            p = torch.softmax(masker(probe["ctx"]), -1)[..., 1]
        return (p[is_answer].mean() / p[other].mean()).item()

    start = ratio()
    popt = torch.optim.Adam([p for p in masker.parameters() if p.requires_grad], lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(600):
        batch = make_batch(tok, rng.sample(examples, 8), 64, prefix_space=True)
        popt.zero_grad()
        rates.append(meta_step(model, masker, batch, cfg, tok.mask_token_id, gen)["mask_rate"])
        popt.step()
    assert abs(start - 1) < 0.02
    assert ratio() > 1.1
    assert 0.05 < sum(rates[-100:]) / 100 < 0.4  # the budget holds the overall rate
