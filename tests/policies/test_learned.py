"""Deployed learned policies (sup_v1, meta_v1) through the preprocessing
pipeline: shards that verify, the same on Ray and in-process, deterministic,
the budget cap honoured; bad checkpoints refused with clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import policies
from maskpt.core.tokenizer import TokenizerInfo, train_tokenizer
from policies.checkpoint import PolicyCheckpointError
from preprocess.config import PreprocessConfig
from preprocess.inspection import iter_rows, verify
from preprocess.pipeline import run_preprocess
from tests.helpers import bundled_texts, synthetic_texts, write_jsonl
from train.meta_policy import MetaConfig
from train.meta_policy import train as train_meta
from train.supervised_policy import SupervisedConfig
from train.supervised_policy import train as train_sup


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_bart):
    d = tmp_path_factory.mktemp("learned")
    rng = np.random.default_rng(0)
    with open(d / "ex.jsonl", "w") as f:
        for i, text in enumerate(synthetic_texts(60, seed=4)):
            words = text.split()
            ans = words[int(rng.integers(len(words)))].strip(".")
            f.write(
                json.dumps({"context": text, "question": f"which word {i}", "answer": ans}) + "\n"
            )
    sup = SupervisedConfig(
        examples=str(d / "ex.jsonl"),
        model=tiny_bart,
        output_dir=str(d / "sup"),
        max_steps=20,
        lr=1e-2,
        batch_size=16,
        hidden=16,
    )
    train_sup(sup, progress=False)
    meta = MetaConfig(
        examples=str(d / "ex.jsonl"),
        model=tiny_bart,
        output_dir=str(d / "meta"),
        steps=100,
        hidden=16,
        pretrain_lr=0.1,
        finetune_lr=0.1,
        policy_lr=1e-2,
        beta=50.0,
        batch_size=8,
        start_at_budget=False,
    )
    last = train_meta(meta, progress=False)
    return {"sup_v1": str(d / "sup"), "meta_v1": str(d / "meta"), "meta_last": last, "dir": d}


def test_meta_training_pulls_the_mask_rate_into_the_budget(checkpoints):
    log = [
        json.loads(x)
        for x in Path(checkpoints["meta_v1"], "train_log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log[:2]] == [1, 10]
    assert all(np.isfinite(r["meta_loss"]) for r in log)
    # the policy starts near 50% (two random logits, start_at_budget=False); the regulariser
    # brings it to 15% +- 10%
    assert log[0]["expected_rate"] > 0.3
    assert 0.05 <= np.mean([r["mask_rate"] for r in log[-3:]]) <= 0.25


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "docs.jsonl"
    write_jsonl(path, bundled_texts() + synthetic_texts(30, seed=8, sentences=(2, 8)))
    return path


def _rows(folder):
    return sorted(json.dumps(r, sort_keys=True) for _, _, r in iter_rows(folder))


@pytest.mark.parametrize("name", ["sup_v1", "meta_v1"])
def test_preprocess_with_learned_policy(
    name, checkpoints, corpus, tmp_path, tokenizer_dir, ray_local
):
    def run(out, use_ray, seed=0):
        cfg = PreprocessConfig(
            inputs=(str(corpus),),
            output=str(out),
            policy=name,
            policy_config={"checkpoint": checkpoints[name], "batch_size": 7},
            tokenizer=tokenizer_dir,
            docs_per_unit=9,
            workers=2,
            seed=seed,
        )
        return run_preprocess(cfg, progress=False, use_ray=use_ray)

    index = run(tmp_path / "ray", True)
    assert verify(tmp_path / "ray") == []
    assert index.policy.checkpoint_sha256
    assert index.counts.segments_written > 30
    run(tmp_path / "local", False)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
    run(tmp_path / "seed1", False, seed=1)
    if name == "meta_v1":  # sampling policy: another seed, other masks
        assert _rows(tmp_path / "seed1") != _rows(tmp_path / "local")
    for _, _, row in iter_rows(tmp_path / "ray"):
        content = len(row["original_ids"]) - 2
        assert 0 < sum(row["masked"]) <= 0.5 * content + 1e-9


def test_sample_mode_picks_among_top_k_across_epochs(checkpoints, tokenizer, tok_info):
    from policies.postprocess import expand_to_whole_words
    from tests.helpers import make_segments

    segs = make_segments(tokenizer, synthetic_texts(20, seed=2))
    top1 = policies.create("sup_v1", tok_info, {"checkpoint": checkpoints["sup_v1"]})
    samp = policies.create(
        "sup_v1",
        tok_info,
        {"checkpoint": checkpoints["sup_v1"], "mode": "sample", "max_span_length": 3},
    )
    seg = segs[0]
    (ann,) = samp.annotate([seg])
    assert len(ann.spans) == 5 and all(0 < e - s <= 3 for s, e in ann.spans)
    n = len(seg.input_ids)
    allowed = {
        tuple(expand_to_whole_words([s <= i < e for i in range(n)], seg.word_ids).tolist())
        for s, e in ann.spans
    }
    picked = {samp.draw(seg, ann, 0, epoch).mask for epoch in range(60)}
    assert picked <= allowed and len(picked) > 1  # only the top 5, and not always the same
    out = top1.mask_batch(segs, 0)
    assert out == top1.mask_batch(list(reversed(segs)), 0)[::-1]
    assert len({top1.draw(seg, ann, 0, e).mask for e in range(10)}) == 1  # top1: the best


def test_meta_sample_masks_each_token_at_its_probability(checkpoints, tokenizer, tok_info):
    from tests.helpers import make_segments

    meta = policies.create("meta_v1", tok_info, {"checkpoint": checkpoints["meta_v1"]})
    segs = make_segments(tokenizer, synthetic_texts(8, seed=5))
    anns = meta.annotate(segs)
    probs = np.concatenate([np.asarray(a.token_probs) / 1000 for a in anns])
    rng = np.random.default_rng(0)
    draws = np.stack(
        [np.concatenate([meta.token_mask(a.token_probs, rng) for a in anns]) for _ in range(400)]
    )
    rate, p = draws.mean(0), probs
    # per token: the empirical rate within 5 standard errors of its probability
    # (tokens forced as a row's most probable one aside)
    se = np.sqrt(np.maximum(p * (1 - p), 1e-4) / len(draws))
    forced = rate > p + 5 * se
    assert forced.sum() <= len(anns) and np.all(np.abs(rate - p)[~forced] <= 5 * se[~forced])
    assert 0 < p.mean() < 1 and rate[~forced].mean() == pytest.approx(p[~forced].mean(), abs=0.01)
    again = [meta.draw(s, a, 3, 1).mask for s, a in zip(segs, anns, strict=True)]
    assert again == [meta.draw(s, a, 3, 1).mask for s, a in zip(segs, anns, strict=True)]


def test_bad_checkpoints_are_refused(checkpoints, tok_info, tmp_path):
    with pytest.raises(PolicyCheckpointError, match="a checkpoint for 'sup_v1', not 'meta_v1'"):
        policies.create("meta_v1", tok_info, {"checkpoint": checkpoints["sup_v1"]})
    with pytest.raises(PolicyCheckpointError, match="policy.json is missing"):
        policies.create("sup_v1", tok_info, {"checkpoint": str(tmp_path)})
    shutil.copytree(checkpoints["sup_v1"], tmp_path / "partial")
    (tmp_path / "partial" / "model.safetensors").unlink()
    with pytest.raises(PolicyCheckpointError, match="partial: model.safetensors is missing"):
        policies.create("sup_v1", tok_info, {"checkpoint": str(tmp_path / "partial")})
    with pytest.raises(ValueError, match="policy_config.checkpoint"):
        policies.create("sup_v1", tok_info)
    other = train_tokenizer(
        synthetic_texts(50, seed=3), tmp_path / "tok2", vocab_size=400, min_frequency=1
    )
    with pytest.raises(PolicyCheckpointError, match="another tokenizer"):
        policies.create(
            "sup_v1", TokenizerInfo.from_tokenizer(other), {"checkpoint": checkpoints["sup_v1"]}
        )
    with pytest.raises(PolicyCheckpointError, match="another tokenizer .fingerprint"):
        policies.create(
            "sup_v1",
            TokenizerInfo.from_tokenizer(other, fingerprint=True),
            {"checkpoint": checkpoints["sup_v1"]},
        )
    bad = tmp_path / "nan"
    shutil.copytree(checkpoints["sup_v1"], bad)
    from safetensors.torch import load_file, save_file

    state = load_file(str(bad / "model.safetensors"))
    state["start.bias"] = torch.tensor([float("nan")])
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(PolicyCheckpointError, match="'start.bias' has NaN"):
        policies.create("sup_v1", tok_info, {"checkpoint": str(bad)})
