"""Algorithm 1: gradients reach every policy parameter and nothing frozen,
the regulariser's shape, the model carries theta(p,1), higher == functional_call."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from policies.networks import budget_regulariser
from train.meta_policy import MetaConfig, load_models, make_batch, meta_step
from train.policy_data import PolicyExample


def _examples():
    texts = [
        ("the secret word is apple today", "what is the secret word", "apple"),
        ("the secret word is river now", "what is the secret word", "river"),
        ("a blue stone lay by the old mill", "what lay by the mill", "blue stone"),
    ]
    return [PolicyExample(str(i), c, q, a) for i, (c, q, a) in enumerate(texts)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bart):
    path = tmp_path_factory.mktemp("meta") / "ex.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"context": e.context, "source": e.source, "target": e.target})
            for e in _examples()
        )
    )
    cfg = MetaConfig(
        examples=str(path), model=tiny_bart, hidden=16, pretrain_lr=0.5, finetune_lr=0.5, tau=1.0
    )
    tok, model, masker, _ = load_models(cfg)
    model.config.dropout = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return cfg, tok, model, masker


def test_regulariser_is_eq7_per_sequence_in_token_counts():
    # row 0: 20 content tokens, 6 masked (30%); row 1: 20 content tokens, none
    # masked (collapsed); row 2: 40 content tokens, 6 masked (15%, in budget).
    # Pooled, rows 0 and 1 mask 15% together: the old pooled-rate form gave 0.
    content = torch.zeros(3, 42)
    content[0, 1:21] = content[1, 1:21] = content[2, 1:41] = 1
    mask = torch.zeros(3, 42, requires_grad=True)
    with torch.no_grad():
        mask[0, 1:7] = 1
        mask[2, 1:7] = 1
    reg = budget_regulariser(mask, content, gamma=0.15, eps=0.05)
    # by hand: gamma*l(x) - l(d) = 3 - 6 = -3 (|-3| > 1: counted), 3 - 0 = 3 (counted),
    # 6 - 6 = 0 (not counted); mean over the batch of 3
    assert reg.item() == pytest.approx((9 + 9 + 0) / 3)
    reg.backward()
    grad = mask.grad
    assert grad[0, 1].item() == pytest.approx(2 * 3 / 3)  # d/dd of (3 - l(d))^2 / 3 at l(d) = 6
    assert grad[1, 1].item() == pytest.approx(-2 * 3 / 3)  # the collapsed row is pushed to mask
    assert torch.all(grad[2] == 0) and torch.all(grad[:, 21:41][:2] == 0)  # padding: no gradient
    inside = torch.zeros(1, 42)
    inside[0, 1:3] = 1  # 2 of 20: |3 - 2| = 1, not more than eps * 20 = 1
    assert budget_regulariser(inside, content[:1], 0.15, 0.05).item() == 0.0
    just_out = torch.zeros(1, 42)
    just_out[0, 1:2] = 1  # 1 of 20: |3 - 1| = 2 > 1
    assert budget_regulariser(just_out, content[:1], 0.15, 0.05).item() == pytest.approx(4.0)


def test_meta_masker_has_the_papers_size_with_bart_base_embeddings(capsys):
    from policies.networks import MetaMasker

    masker = MetaMasker(torch.zeros(50265, 768))  # BART-base's vocabulary and width
    n = sum(p.numel() for p in masker.parameters())
    assert abs(n - 40e6) <= 0.1 * 40e6, n


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

_CODES = {
    "zorb": "apple",
    "plim": "river",
    "quax": "stone",
    "vendo": "cloud",
    "trisk": "tiger",
    "molp": "maple",
    "yarn": "ocean",
    "fesk": "violet",
    "gulo": "candle",
    "nabi": "forest",
}
_FILL = ["the", "a", "one", "old", "new", "small", "big", "green", "quiet", "loud", "early", "late"]


def _code_examples(n: int, seed: int) -> list[PolicyExample]:
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
        out.append(PolicyExample(str(i), c, f"what is the code of {key}", word))
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mask_probability_rises_on_the_helpful_token(tmp_path):
    """With `outer_loss=after`, answers prefixed as in the context, inner steps
    of 0.05 and a model that already copies its input, the policy's mask
    probability on the answer word rises relative to every other token while
    the budget regulariser (Eq. 7 on drawn masks, β 0.01 in squared token
    counts; the start at p ≈ 0.5: the trainer's form before issue 25) holds the
    overall rate (so the absolute probability of every token falls from the
    initial 0.5): the ratio passes 1.1 within 600 steps. (With the earlier
    pooled-rate regulariser at β 10 it measured 1.21 at 600 steps, and 1.13
    with the paper's `difference`.) With inner steps of 0.5 the gradient on
    the answer's mask has the other sign: one large step on an unpredictable
    masked word hurts."""
    import random

    from maskpt.core.tokenizer import train_tokenizer
    from tests.helpers import save_tiny_bart

    examples = _code_examples(400, seed=0)
    tok = train_tokenizer(
        [e.context for e in examples] + [e.source for e in examples],
        tmp_path / "tok",
        vocab_size=400,
        min_frequency=1,
    )
    path = tmp_path / "ex.jsonl"
    path.write_text("")
    cfg = MetaConfig(
        examples=str(path),
        model=save_tiny_bart(tok, tmp_path / "bart", d_model=64),
        hidden=32,
        pretrain_lr=0.05,
        finetune_lr=0.05,
        policy_lr=3e-3,
        beta=0.01,
        outer_loss="after",
        target_prefix_space=True,
        backend="func",
        budget="sampled",
        start_at_budget=False,
    )
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
    answers = torch.tensor(
        sorted({tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in _CODES.values()})
    )
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


@pytest.mark.parametrize("task", ["wow", "wiqa", "quartz", "ropes"])
def test_meta_learns_from_a_non_extractive_task_and_preprocessing_deploys_it(
    task, tmp_path, tiny_bart, tokenizer
):
    """None of these tasks has its target inside its context: the meta trainer
    takes every (c, s, t), the fine-tuning dev/test questions excluded."""
    from preprocess.config import PreprocessConfig
    from preprocess.inspection import verify
    from preprocess.pipeline import run_preprocess
    from tests.helpers import bundled_texts, write_jsonl
    from tests.train.task_fixtures import write_task
    from train.meta_policy import train

    folder = write_task(task, tmp_path / task, overlap=2)
    out = tmp_path / "meta"
    cfg = MetaConfig(
        task=task,
        data_dir=str(folder),
        model=tiny_bart,
        output_dir=str(out),
        steps=3,
        batch_size=4,
        hidden=16,
        log_every=1,
        max_length=64,
    )
    last = train(cfg, progress=False)
    assert last["step"] == 3 and np.isfinite(last["meta_loss"])
    info = json.loads((out / "policy.json").read_text())["training"]
    assert info["examples"] >= 8 and info["dropped"]["in_finetune_eval"] == 2
    corpus = write_jsonl(tmp_path / "docs.jsonl", bundled_texts()[:4])
    index = run_preprocess(
        PreprocessConfig(
            inputs=(str(corpus),),
            output=str(tmp_path / "shards"),
            policy="meta_v1",
            policy_config={"checkpoint": str(out)},
            tokenizer=tokenizer.name_or_path,
        ),
        progress=False,
        use_ray=False,
    )
    assert verify(tmp_path / "shards") == [] and index.counts.segments_written > 0


# --- the defaults' departures from the paper's letter, and the diagnostics -----------


def test_expected_budget_is_quiet_inside_the_band_where_sampled_masks_are_not():
    content = torch.zeros(1, 30)
    content[0, 1:21] = 1  # 20 content tokens: γ·l = 3, ε·l = 1
    probs = torch.full((1, 30), 0.15, requires_grad=True)
    reg = budget_regulariser(probs * content, content, 0.15, 0.05)
    reg.backward()
    assert reg.item() == 0.0 and torch.all(probs.grad == 0)
    # masks drawn from the same probabilities leave the band on about a third of draws
    gen = torch.Generator().manual_seed(0)
    outside = sum(
        budget_regulariser(
            (torch.rand(1, 30, generator=gen) < 0.15).float() * content, content, 0.15, 0.05
        ).item()
        > 0
        for _ in range(400)
    )
    assert 0.25 < outside / 400 < 0.45


def test_start_at_budget_puts_every_token_at_gamma():
    from policies.networks import MetaMasker

    torch.manual_seed(0)
    masker = MetaMasker(torch.randn(300, 32), hidden=16)
    ids = torch.randint(3, 300, (4, 50))
    blind = torch.softmax(masker(ids), -1)[..., 1]
    assert (blind - 0.5).abs().max() < 0.2  # the default start: near 0.5
    masker.start_at(0.15)
    p = torch.softmax(masker(ids), -1)[..., 1]
    assert (p - 0.15).abs().max() < 0.01
    assert all(p.requires_grad for p in (masker.fc2.weight, masker.fc2.bias))


@pytest.mark.parametrize("backend", ["higher", "func"])
def test_inner_steps_carry_theta_k(setup, backend):
    cfg, tok, model0, masker0 = setup
    cfg = MetaConfig(**{**cfg.__dict__, "backend": backend, "inner_steps": 2, "pretrain_lr": 0.1})
    model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
    expect = copy.deepcopy(model0)
    batch = make_batch(tok, _examples(), 64)
    rec = meta_step(model, masker, batch, cfg, tok.mask_token_id, torch.Generator().manual_seed(3))
    d = rec["mask"]
    sgd = torch.optim.SGD(expect.parameters(), lr=0.1)
    for _ in range(2):  # two plain SGD steps on the same masked batch
        emb = expect.model.encoder.embed_tokens
        ids = batch["ctx"]
        mixed = (1 - d)[..., None] * emb(ids) + d[..., None] * emb(
            torch.full_like(ids, tok.mask_token_id)
        )
        sgd.zero_grad()
        expect(
            inputs_embeds=mixed, attention_mask=batch["ctx_att"], labels=batch["ctx_labels"]
        ).loss.backward()
        sgd.step()
    for (n, p), q in zip(model.named_parameters(), expect.parameters()):
        assert torch.allclose(p, q, atol=1e-5), n
    assert all(p.grad is not None for p in masker.parameters() if p.requires_grad)


def test_beta_scale_meta_makes_the_budget_gradient_beta_times_the_meta_gradient(setup):
    cfg, tok, model0, masker0 = setup
    cfg = MetaConfig(**{**cfg.__dict__, "beta": 0.5, "beta_scale": "meta", "budget": "sampled"})
    model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
    batch = make_batch(tok, _examples(), 64)
    rec = meta_step(model, masker, batch, cfg, tok.mask_token_id, torch.Generator().manual_seed(1))
    assert rec["reg"] > 0  # the fixture's policy starts at ~0.5, outside the band
    assert rec["grad_norm_reg"] == pytest.approx(0.5 * rec["grad_norm_meta"], rel=1e-4)
    fixed = MetaConfig(**{**cfg.__dict__, "beta_scale": "fixed"})
    model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
    rec2 = meta_step(
        model, masker, batch, fixed, tok.mask_token_id, torch.Generator().manual_seed(1)
    )
    assert rec2["grad_norm_reg"] > 100 * rec2["grad_norm_meta"]  # in token counts, unscaled


def test_a_frozen_copy_of_the_policy_gains_nothing(setup):
    cfg, tok, model0, masker0 = setup
    model, masker = copy.deepcopy(model0), copy.deepcopy(masker0)
    frozen = copy.deepcopy(masker0).requires_grad_(False)
    batch = make_batch(tok, _examples(), 64)
    rec = meta_step(
        model, masker, batch, cfg, tok.mask_token_id, torch.Generator().manual_seed(2), frozen
    )
    assert rec["meta_gain"] == pytest.approx(0.0, abs=1e-4 * abs(rec["outer"]) + 1e-6)
    assert rec["outer_frozen"] == pytest.approx(rec["outer"], rel=1e-4)


def test_train_policy_meta_on_the_synth_task_logs_its_diagnostics(tmp_path, tiny_bart, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from maskpt.cli import main
    from maskpt.world import WorldConfig, generate

    generate(WorldConfig(people=8, background_people=0, repeats=1), tmp_path / "world")
    out = tmp_path / "meta"
    rc = main(
        [
            "train-policy",
            "meta",
            "--task",
            "synth",
            "--data-dir",
            str(tmp_path / "world" / "qa"),
            f"model={tiny_bart}",
            f"output_dir={out}",
            "steps=4",
            "batch_size=4",
            "hidden=16",
            "log_every=2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "answer probe on 8 held-out contexts" in text
    logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 4]
    for key in (
        "l_ft1",
        "l_ft2",
        "l_diff",
        "beta_reg",
        "rows_in_budget",
        "grad_norm_meta",
        "grad_norm_reg",
        "meta_gain",
        "probe_ratio",
        "probe_ratio_frozen",
    ):
        assert all(np.isfinite(r[key]) for r in logs), key
    info = json.loads((out / "policy.json").read_text())["training"]
    assert info["examples"] == 24 and info["probe_examples"] == 8  # 4 people x 8 questions
    events = EventAccumulator(str(out / "runs"))
    events.Reload()
    assert [e.step for e in events.Scalars("meta/probe_ratio")] == [1, 2, 4]
