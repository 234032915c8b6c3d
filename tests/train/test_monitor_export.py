"""Pre-training as DeepSpeed users run it: TensorBoard events through
DeepSpeed's monitor, their own DeepSpeed config merged over the recipe's
(ZeRO-3 with CPU offload on two CPU ranks), and `maskpt export` of any
saved checkpoint."""

import json

import pytest

from maskpt.core.config import ConfigError
from tests.helpers import TINY, make_shards, run_cfg, run_main
from tests.train.test_pretrain import _launch
from train.distributed import zero_config
from train.monitor import deepspeed_config, monitor_sections


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    return make_shards(tmp_path_factory.mktemp("shards") / "arrow", tokenizer)


def test_user_config_is_merged_and_batch_sizes_are_checked(tmp_path):
    computed = {
        **zero_config(16, 4, 2, 1.0, 1, False),
        **monitor_sections(["tensorboard"], tmp_path, "j"),
    }
    user = {
        "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}},
        "train_batch_size": "auto",
        "gradient_clipping": 0.5,
    }
    merged = deepspeed_config(computed, user)
    assert merged["zero_optimization"] == {"stage": 3, "offload_optimizer": {"device": "cpu"}}
    assert merged["train_batch_size"] == 16 and merged["gradient_clipping"] == 0.5
    assert merged["tensorboard"]["output_path"] == str(tmp_path / "monitor") + "/"
    assert computed["zero_optimization"] == {"stage": 1}  # not modified in place
    with pytest.raises(ConfigError, match="train_micro_batch_size_per_gpu = 8 disagrees"):
        deepspeed_config(computed, {"train_micro_batch_size_per_gpu": 8})
    with pytest.raises(ConfigError, match="stage must be 0-3"):
        deepspeed_config(computed, {"zero_optimization": {"stage": 4}})
    with pytest.raises(ConfigError, match="report_to: unknown"):
        monitor_sections(["tensorbored"], tmp_path, "j")


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list(folder.rglob("events.out.tfevents.*"))
    assert len(events) == 1, events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_and_export_of_a_mid_run_checkpoint(tmp_path, shards, tokenizer):
    run = tmp_path / "run"
    over = run_cfg(
        run,
        shards,
        tokenizer,
        total_steps=4,
        global_batch=8,
        micro_batch=4,
        save_every=2,
        report_to="[tensorboard,csv]",
        export_every="true",
    )
    proc = run_main(["--config", str(TINY), *over], tmp_path)
    said = proc.stdout + proc.stderr  # no start-up noise from DeepSpeed on CPU
    assert "unable to detect" not in said and "built successfully" not in said
    tb = _scalars(run / "monitor")
    logs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [s for s, _ in tb["pretrain/loss"]] == [1, 2, 3, 4]
    assert [v for _, v in tb["pretrain/loss"]] == pytest.approx([r["loss"] for r in logs])
    for tag in ("lr", "grad_norm", "mask_ratio", "tokens_per_s"):
        assert len(tb[f"pretrain/{tag}"]) == 4, tag
    assert all(0.05 < r["mask_ratio"] < 0.6 and r["grad_norm"] > 0 for r in logs)
    assert list((run / "monitor").rglob("*.csv"))  # the csv monitor too
    assert sorted(p.name for p in (run / "exports").iterdir()) == ["step00000002", "step00000004"]

    from transformers import AutoTokenizer, BartForConditionalGeneration

    from train.export import main as export_main

    assert export_main([str(run / "checkpoints" / "step00000002"), str(tmp_path / "mid")]) == 0
    mid = BartForConditionalGeneration.from_pretrained(tmp_path / "mid")
    tok = AutoTokenizer.from_pretrained(tmp_path / "mid")
    assert tok.model_max_length == 80
    exported = json.loads((tmp_path / "mid" / "tokenizer_config.json").read_text())
    assert "local_files_only" not in exported  # its users' loaders are not kept offline
    out = mid.generate(
        **tok(["The lighthouse <mask> in Norway."], return_tensors="pt"), max_new_tokens=6
    )
    assert out.shape[1] > 1
    # the last checkpoint exports to exactly the model the run exported itself
    assert export_main([str(run), str(tmp_path / "last")]) == 0
    last = BartForConditionalGeneration.from_pretrained(tmp_path / "last")
    final = BartForConditionalGeneration.from_pretrained(run / "hf")
    a, b, m = last.state_dict(), final.state_dict(), mid.state_dict()
    assert all((a[k] == b[k]).all() for k in b)
    assert any((a[k] != m[k]).any() for k in b)  # step 2 is another model
    with pytest.raises(Exception, match="not empty"):
        export_main([str(run), str(tmp_path / "last")])


@pytest.mark.slow
def test_zero3_with_cpu_offload_from_a_user_config_matches_zero1(tmp_path, shards, tokenizer):
    ds = tmp_path / "ds_config.json"
    ds.write_text(
        json.dumps(
            {
                "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}},
                "zero_force_ds_cpu_optimizer": False,
            }
        )
    )
    common = dict(total_steps=3, global_batch=8, micro_batch=2, report_to="[none]")
    for name, extra in (("z1", []), ("z3", ["--deepspeed_config", str(ds)])):
        args = [
            "--config",
            str(TINY),
            *extra,
            *run_cfg(tmp_path / name, shards, tokenizer, **common),
        ]
        proc = _launch(args, tmp_path, 2)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    used = json.loads((tmp_path / "z3" / "deepspeed_config.json").read_text())
    assert used["zero_optimization"]["stage"] == 3
    from transformers import BartForConditionalGeneration

    z1 = BartForConditionalGeneration.from_pretrained(tmp_path / "z1" / "hf").state_dict()
    z3 = BartForConditionalGeneration.from_pretrained(tmp_path / "z3" / "hf").state_dict()
    assert all(z1[k].shape == z3[k].shape for k in z1)
    assert all(z1[k].allclose(z3[k], atol=1e-5) for k in z1)
    loss = lambda d: [json.loads(x)["loss"] for x in (d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert loss(tmp_path / "z3") == pytest.approx(loss(tmp_path / "z1"), rel=1e-4)


def test_report_to_wandb_without_the_package_is_refused_when_parsed(monkeypatch):
    """One line before any work (was a 48-line traceback per rank after start-up)."""
    import importlib.util

    from maskpt.core.config import load_config
    from train.finetune import FinetuneConfig
    from train.pretrain_config import PretrainConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'maskpt\[wandb\]'"):
        load_config(
            PretrainConfig,
            TINY,
            ["data.shards=[x]", "model.tokenizer=t", "report_to=[tensorboard,wandb]"],
        )
    with pytest.raises(ConfigError, match="wandb needs the wandb package"):
        load_config(FinetuneConfig, None, ["task=nq", "data_dir=d", "model=m", "report_to=[wandb]"])


def _wandb_history(run_file):
    """The history rows of an offline W&B run, read from its `.wandb` file (a
    LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each
    with a 7-byte header of crc, length and type, holding `Record` protobufs)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    rows, part, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - (pos % block)
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(part)
            part = b""
            if rec.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        i.key or "/".join(i.nested_key): json.loads(i.value_json)
                        for i in rec.history.item
                    }
                )
    return rows


def test_wandb_offline_run_holds_every_logged_pretrain_step(
    tmp_path, shards, tokenizer, monkeypatch
):
    """W&B drops scalars logged out of step order; the recipe's own run logs
    `pretrain/*` against `pretrain/step`, so every logged step is kept."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    over = run_cfg(
        run,
        shards,
        tokenizer,
        total_steps=4,
        global_batch=8,
        micro_batch=4,
        report_to="[wandb]",
        log_every=1,
    )
    proc = run_main(["--config", str(TINY), *over], tmp_path)
    assert "will be ignored" not in proc.stdout + proc.stderr
    files = list((run / "monitor" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    rows = [r for r in _wandb_history(files[0]) if "pretrain/loss" in r]
    logs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["pretrain/step"] for r in rows] == [1, 2, 3, 4]
    assert [r["pretrain/loss"] for r in rows] == pytest.approx([r["loss"] for r in logs])
    assert all("pretrain/lr" in r and "pretrain/grad_norm" in r for r in rows)
