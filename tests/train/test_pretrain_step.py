"""The GPU step's changes, checked on CPU: the padded vocabulary trains the
same and exports unpadded; length bucketing and torch.compile resume exactly;
every change on trains like every change off; the recipe's own clipping (fp32
without ZeRO) trains like DeepSpeed's."""

import json

import pytest

from tests.helpers import TINY, make_shards, run_cfg, run_main

ALL_ON = {
    "data.bucket": "true",
    "data.pad_to_multiple_of": 8,
    "compile": "true",
    "compile_options": "{backend: aot_eager}",  # dynamo + AOT autograd, no C++ build
    "pad_vocab_to_multiple_of": 64,
}
ALL_OFF = {"data.bucket": "false", "compile": "false", "pad_vocab_to_multiple_of": 1}


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    return make_shards(tmp_path_factory.mktemp("shards") / "arrow", tokenizer)


def _losses(folder):
    return [json.loads(x)["loss"] for x in (folder / "log.jsonl").read_text().splitlines()]


def _run(folder, shards, tokenizer, *extra, **over):
    run_main(["--config", str(TINY), *extra, *run_cfg(folder, shards, tokenizer, **over)], folder)


def test_padded_vocabulary_trains_the_same_and_exports_unpadded(tmp_path, shards, tokenizer):
    from transformers import BartForConditionalGeneration

    from train.export import export_checkpoint

    common = dict(total_steps=4, global_batch=8, micro_batch=4, save_every=2)
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    plain.mkdir(), padded.mkdir()
    _run(plain, shards, tokenizer, pad_vocab_to_multiple_of=1, **common)
    _run(padded, shards, tokenizer, pad_vocab_to_multiple_of=64, **common)
    assert len(tokenizer) % 64  # the test's vocabulary is not aligned already
    assert _losses(padded) == pytest.approx(_losses(plain), rel=1e-4)
    exported = export_checkpoint(padded / "checkpoints" / "step00000002", tmp_path / "step2")
    for folder in (padded / "hf", exported):
        model = BartForConditionalGeneration.from_pretrained(folder)
        assert model.config.vocab_size == len(tokenizer)
        assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
        assert model.final_logits_bias.shape[-1] == len(tokenizer)
        assert float(model.final_logits_bias.min()) > -1  # no padded logit left
    assert json.loads((padded / "model" / "config.json").read_text())["vocab_size"] == len(
        tokenizer
    )


@pytest.mark.slow  # three compiled runs: about 2 minutes
def test_resume_with_bucketing_and_compile_matches_uninterrupted(tmp_path, shards, tokenizer):
    common = dict(total_steps=6, global_batch=8, micro_batch=4, save_every=3, **ALL_ON)
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir(), part.mkdir()
    _run(full, shards, tokenizer, **common)
    _run(part, shards, tokenizer, stop_after=3, **common)
    _run(part, shards, tokenizer, "--resume", **common)
    assert _losses(part) == pytest.approx(_losses(full), rel=1e-6)
    digest = "param_sha256.rank0.txt"
    assert (part / digest).read_text() == (full / digest).read_text()
    ids = [json.loads(x) for x in (part / "example_ids.rank0.jsonl").read_text().splitlines()]
    assert len({i for r in ids for i in r["ids"]}) == 48  # 6 steps x 8, nothing twice


@pytest.mark.slow
def test_every_change_on_trains_like_every_change_off(tmp_path, shards, tokenizer):
    """200 steps (about 14 epochs of the test shards) with bucketing, padding to
    8, the padded vocabulary and compile, against all of them off: the same
    loss curve within 2% at every 20-step window (measured: within 0.8%)."""
    common = dict(
        total_steps=200,
        global_batch=8,
        micro_batch=2,
        save_every=0,
        debug_records="false",
        **{"optim.warmup_steps": 20},
    )
    on, off = tmp_path / "on", tmp_path / "off"
    on.mkdir(), off.mkdir()
    _run(on, shards, tokenizer, **common, **ALL_ON)
    _run(off, shards, tokenizer, **common, **ALL_OFF)
    a, b = _losses(on), _losses(off)
    assert len(a) == len(b) == 200 and a[-1] < 0.8 * a[0]  # it trained
    for w in range(0, 200, 20):
        assert sum(a[w : w + 20]) == pytest.approx(sum(b[w : w + 20]), rel=0.02), w


def test_clipping_in_the_recipe_trains_like_deepspeeds(tmp_path, shards, tokenizer):
    """In fp32 without ZeRO the recipe clips with the norm it logs (DeepSpeed's
    config gets gradient_clipping 0); ZeRO-1 leaves clipping to DeepSpeed. A clip
    of 0.05 acts at every step: the same losses and norms, unlike no clipping."""
    common = dict(total_steps=5, global_batch=8, micro_batch=4, save_every=0)
    common.update({"optim.lr": 0.01, "optim.warmup_steps": 1})
    runs = {}
    for name, stage, clip in (("own", 0, 0.05), ("ds", 1, 0.05), ("none", 0, 0)):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        _run(runs[name], shards, tokenizer, zero_stage=stage, **{"optim.grad_clip": clip}, **common)
    ds_cfg = {k: json.loads((f / "deepspeed_config.json").read_text()) for k, f in runs.items()}
    assert ds_cfg["own"]["gradient_clipping"] == 0 and ds_cfg["ds"]["gradient_clipping"] == 0.05
    logs = {
        k: [json.loads(x) for x in (f / "log.jsonl").read_text().splitlines()]
        for k, f in runs.items()
    }
    norms = [r["grad_norm"] for r in logs["own"]]
    assert min(norms) > 0.5  # far above the clip: every step clipped
    assert norms == pytest.approx([r["grad_norm"] for r in logs["ds"]], rel=1e-4)
    assert _losses(runs["own"]) == pytest.approx(_losses(runs["ds"]), rel=1e-5)
    assert _losses(runs["own"])[2:] != pytest.approx(_losses(runs["none"])[2:], rel=1e-3)


def test_own_clipping_only_in_fp32_without_zero_and_refuses_a_non_number():
    from maskpt.core.config import ConfigError
    from train.pretrain import own_clipping

    def ds(stage=0, bf16=False, **extra):
        return {"zero_optimization": {"stage": stage}, "bf16": {"enabled": bf16}, **extra}

    cfg = ds(gradient_clipping=1.5)
    assert own_clipping(cfg) == (True, 1.5) and cfg["gradient_clipping"] == 0  # DeepSpeed: none
    assert own_clipping(ds()) == (True, 0.0)
    for other in (ds(stage=2), ds(bf16=True), ds(fp16={"enabled": True})):
        other["gradient_clipping"] = 1.5
        assert own_clipping(other) == (False, 0.0) and other["gradient_clipping"] == 1.5
    with pytest.raises(ConfigError, match="gradient_clipping"):
        own_clipping(ds(gradient_clipping="auto"))
