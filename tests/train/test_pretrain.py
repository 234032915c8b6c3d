"""Pre-training on CPU: single process, 2 processes over gloo (DeepSpeed's
launcher), kill-and-resume, export, and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maskpt.config import load_config
from tests.conftest import bundled_texts, synthetic_texts, write_jsonl
from train.data import DataError, PretrainStream, open_source
from train.pretrain import PretrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "pretrain" / "tiny_cpu.yaml"


def _make_shards(out, tokenizer, tok_info, fmt):
    """A small shard folder, written in-process (no Ray)."""
    from preprocess.config import PreprocessConfig
    from preprocess.pipeline import run_preprocess

    texts = bundled_texts() + synthetic_texts(60, seed=21, sentences=(1, 3))
    inp = write_jsonl(out.parent / f"in-{out.name}.jsonl", texts, prefix="d")
    cfg = PreprocessConfig(
        inputs=(str(inp),),
        output=str(out),
        policy="rand_v1",
        tokenizer=tokenizer.name_or_path,
        shard_size=23,
        max_length=64,
        format=fmt,
        docs_per_unit=20,
    )
    run_preprocess(cfg, progress=False, use_ray=False)
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer, tok_info):
    return _make_shards(tmp_path_factory.mktemp("shards"), tokenizer, tok_info, "arrow")


def test_webdataset_and_fsspec_url_give_the_same_stream(
    shards, tmp_path_factory, tokenizer, tok_info
):
    wds = _make_shards(tmp_path_factory.mktemp("wds"), tokenizer, tok_info, "webdataset")
    assert not list(wds.glob("*.arrow"))
    streams = [
        PretrainStream([open_source(f)], 4, 0, 1, seed=2)
        for f in (str(shards), str(wds), f"file://{shards}")
    ]
    batches = [[s.micro_batch(k) for k in range(12)] for s in streams]
    assert batches[0] == batches[1] == batches[2]


def run_cfg(tmp_path, shards, tokenizer, **over):
    args = [
        f"data.shards=[{shards}]",
        f"model.tokenizer={tokenizer.name_or_path}",
        f"output_dir={tmp_path}",
        "max_length=64",
        "model.config.max_position_embeddings=80",
        "debug_records=true",
        "log_every=1",
    ]
    args += [f"{k}={v}" for k, v in over.items()]
    return args


def all_ids(shards):
    from preprocess.inspection import iter_rows

    return sorted(r["id"] for _, _, r in iter_rows(shards))


def test_stream_exactly_once_across_ranks_and_workers(shards):
    src = open_source(str(shards))
    n, k_steps = src.size, src.size // 6 + 2
    per_rank = []
    for rank in range(2):
        stream = PretrainStream([src], micro_batch=3, rank=rank, world_size=2, seed=5)
        direct = [[r["id"] for r in stream.micro_batch(k)] for k in range(k_steps)]
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        it = iter(loader)
        assert [[r["id"] for r in next(it)] for _ in range(k_steps)] == direct
        per_rank.append(direct)
    stream_order = [i for k in range(k_steps) for rank in range(2) for i in per_rank[rank][k]]
    epoch = stream_order[:n]
    assert sorted(epoch) == all_ids(shards)  # every example exactly once
    assert epoch != sorted(epoch)  # shuffled


def test_stream_resume_and_epochs(shards):
    src = open_source(str(shards))
    a = PretrainStream([src], 4, 0, 1, seed=1)
    first = [a.micro_batch(k) for k in range(30)]
    b = PretrainStream([src], 4, 0, 1, seed=1)
    b.load_state_dict({"micro_steps_done": 17})
    assert next(iter(b)) == first[17]
    n = src.size
    epoch0 = [r["id"] for mb in first for r in mb][:n]
    epoch1 = [r["id"] for mb in first for r in mb][n : 2 * n]
    assert sorted(epoch0) == all_ids(shards)
    if len(epoch1) == n:
        assert sorted(epoch1) == sorted(epoch0) and epoch1 != epoch0


def test_mixture_weights(shards, tmp_path):
    src_a, src_b = open_source(str(shards), 3.0), open_source(str(shards), 1.0)
    s = PretrainStream([src_a, src_b], 8, 0, 1, seed=0)
    picks = [s.mix.pick(p) for p in range(4000)]
    assert abs(picks.count(0) / 4000 - 0.75) < 0.01


def run_main(args, tmp_path):
    """`python train/pretrain.py ...` in a fresh process (DeepSpeed keeps
    process-group state per process, so each run gets its own)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train" / "pretrain.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_single_process_run_export_and_generate(tmp_path, shards, tokenizer):
    run_main(
        [
            "--config",
            str(TINY),
            *run_cfg(tmp_path, shards, tokenizer, total_steps=4, global_batch=8, micro_batch=4),
        ],
        tmp_path,
    )
    logs = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 for r in logs)
    from transformers import AutoTokenizer, BartForConditionalGeneration

    model = BartForConditionalGeneration.from_pretrained(tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    out = model.generate(
        **tok(["The lighthouse <mask> in Norway."], return_tensors="pt"),
        max_new_tokens=8,
        num_beams=2,
    )
    assert out.shape[0] == 1 and out.shape[1] > 1


def test_kill_and_resume_matches_uninterrupted(tmp_path, shards, tokenizer):
    common = dict(total_steps=6, global_batch=8, micro_batch=4, save_every=3)
    full, part = tmp_path / "full", tmp_path / "part"
    run_main(["--config", str(TINY), *run_cfg(full, shards, tokenizer, **common)], tmp_path)
    run_main(
        ["--config", str(TINY), *run_cfg(part, shards, tokenizer, stop_after=3, **common)], tmp_path
    )
    assert not (part / "hf").exists()
    run_main(
        ["--config", str(TINY), "--resume", *run_cfg(part, shards, tokenizer, **common)], tmp_path
    )
    loss = lambda d: [json.loads(x)["loss"] for x in (d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert loss(part) == pytest.approx(loss(full), rel=1e-5)
    assert (part / "param_sha256.rank0.txt").read_text() == (
        full / "param_sha256.rank0.txt"
    ).read_text()
    seen = [
        i
        for x in (part / "example_ids.rank0.jsonl").read_text().splitlines()
        for i in json.loads(x)["ids"]
    ]
    n = len(all_ids(shards))
    assert len(seen) == 48 and len(set(seen[:n])) == min(
        n, 48
    )  # nothing seen twice within an epoch


def _launch(args, tmp_path, nprocs):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    launcher = Path(sys.executable).parent / "deepspeed"
    cmd = [
        str(launcher) if launcher.exists() else "deepspeed",
        "--num_gpus",
        str(nprocs),
        "--master_port",
        str(29600 + os.getpid() % 300),
        str(ROOT / "train" / "pretrain.py"),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_deepspeed_launcher_two_ranks(tmp_path, shards, tokenizer):
    args = [
        "--config",
        str(TINY),
        *run_cfg(tmp_path, shards, tokenizer, total_steps=3, global_batch=8, micro_batch=2),
    ]
    proc = _launch(args, tmp_path, 2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    h0 = (tmp_path / "param_sha256.rank0.txt").read_text()
    assert h0 == (tmp_path / "param_sha256.rank1.txt").read_text()
    ids = []
    for r in range(2):
        ids += [
            i
            for x in (tmp_path / f"example_ids.rank{r}.jsonl").read_text().splitlines()
            for i in json.loads(x)["ids"]
        ]
    assert len(ids) == 24 and len(set(ids)) == 24  # 3 steps x 8, disjoint across ranks
    assert (tmp_path / "hf" / "model.safetensors").exists()


def test_non_finite_loss_stops_without_saving(tmp_path, shards, tokenizer):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = run_cfg(
        tmp_path,
        shards,
        tokenizer,
        total_steps=6,
        global_batch=8,
        micro_batch=4,
        save_every=1,
        **{"optim.lr": "1e25", "optim.warmup_steps": 1, "optim.grad_clip": 0},
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train" / "pretrain.py"), "--config", str(TINY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "non-finite loss at step" in proc.stderr and "examples [" in proc.stderr
    step = int(proc.stderr.split("non-finite loss at step ")[1].split(",")[0])
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("step*"))
    assert saved == [f"step{s:08d}" for s in range(1, step + 1)]  # nothing from the bad step
    assert not (tmp_path / "hf").exists()


def test_bad_input_fails_before_training(tmp_path, shards, tokenizer):
    from maskpt.tokenizer import train_tokenizer
    from train.loop import prepare

    def cfg(**o):
        return load_config(
            PretrainConfig, TINY, run_cfg(tmp_path, o.pop("s", shards), tokenizer, **o)
        )

    incomplete = tmp_path / "incomplete"
    shutil.copytree(shards, incomplete)
    (incomplete / "index.json").unlink()
    with pytest.raises(DataError, match="no index.json"):
        prepare(cfg(s=incomplete), 1)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards, corrupt)
    shard = next(corrupt.glob("part-*.arrow"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):
        prepare(cfg(s=corrupt), 1)
    other = train_tokenizer(
        synthetic_texts(30, seed=3), tmp_path / "tok", vocab_size=400, min_frequency=1
    )
    with pytest.raises(DataError, match="tokenizer"):
        prepare(load_config(PretrainConfig, TINY, run_cfg(tmp_path, shards, other)), 1)
    with pytest.raises(ValueError, match="cannot be split"):
        prepare(cfg(global_batch=12, micro_batch=4), 2)
    from maskpt.config import ConfigError

    with pytest.raises(ConfigError, match="not a multiple of micro_batch"):
        cfg(global_batch=10, micro_batch=4)


def test_ranks_share_checksum_verification(tmp_path, shards):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards, corrupt)
    listed = [s["path"] for s in open_source(str(shards)).shards]
    k = 1
    p = corrupt / listed[k]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):  # the rank that owns shard k finds it
        open_source(str(corrupt), verify_part=(k % 2, 2))
    open_source(str(corrupt), verify_part=((k + 1) % 2, 2))  # the other rank does not hash it
    (corrupt / listed[0]).unlink()
    for part in range(2):  # a missing shard is seen by every rank
        with pytest.raises(DataError, match="missing"):
            open_source(str(corrupt), verify_part=(part, 2))
