"""Pre-training on CPU: single process, 2 processes over gloo (DeepSpeed's
launcher), kill-and-resume, export, and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskpt.core.config import load_config
from preprocess.index import ShardIndexError
from tests.helpers import TINY, make_shards, run_cfg, run_main, synthetic_texts
from train.data import DataError, open_source
from train.pretrain import PretrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    return make_shards(tmp_path_factory.mktemp("shards") / "arrow", tokenizer)


def test_maskpt_pretrain_runs_exports_and_generates(tmp_path, shards, tokenizer):
    over = run_cfg(tmp_path, shards, tokenizer, total_steps=4, global_batch=8)
    run_main([over[0], "--config", str(TINY), *over[1:], "--micro-batch", "4"], tmp_path, True)
    logs = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 for r in logs)
    from transformers import AutoTokenizer, BartForConditionalGeneration

    model = BartForConditionalGeneration.from_pretrained(tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.model_max_length == 80  # the model's positions: truncation=True keeps inputs usable
    out = model.generate(
        **tok(["The lighthouse <mask> in Norway."], return_tensors="pt"),
        max_new_tokens=8,
        num_beams=2,
    )
    assert out.shape[0] == 1 and out.shape[1] > 1
    readme = (ROOT / "README.md").read_text()  # the README's snippet, on this export
    snippet = readme.split("<!-- use-the-model -->\n```python\n")[1].split("```")[0]
    snippet = snippet.replace('"runs/pretrain/tiny/hf"', repr(str(tmp_path / "hf")))
    proc = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("[") and proc.stdout.strip().endswith("]")


@pytest.mark.slow  # the torn-checkpoint test resumes to the same weights in the fast loop
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
    n = open_source(str(shards)).size
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


@pytest.mark.parametrize("bucket", ["false", "true"])
def test_non_finite_loss_stops_without_saving(tmp_path, shards, tokenizer, bucket):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = run_cfg(
        tmp_path,
        shards,
        tokenizer,
        total_steps=6,
        global_batch=8,
        micro_batch=4,
        save_every=1,
        **{
            "optim.lr": "1e25",
            "optim.warmup_steps": 1,
            "optim.grad_clip": 0,
            "data.bucket": bucket,
        },
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
    assert saved == [f"step{s:08d}" for s in range(1, step)]  # nothing from the bad step
    logged = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, step))  # the log and the message count steps alike
    assert not (tmp_path / "hf").exists()


def test_bad_input_fails_before_training(tmp_path, shards, tokenizer):
    from maskpt.core.tokenizer import train_tokenizer
    from train.pretrain import prepare

    def cfg(**o):
        return load_config(
            PretrainConfig, TINY, run_cfg(tmp_path, o.pop("s", shards), tokenizer, **o)
        )

    incomplete = tmp_path / "incomplete"
    shutil.copytree(shards, incomplete)
    (incomplete / "index.json").unlink()
    with pytest.raises(ShardIndexError, match="no index.json"):
        prepare(cfg(s=incomplete), 1)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards, corrupt)
    shard = next(corrupt.glob("arrow/shard-*.arrow"))
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
    from maskpt.core.config import ConfigError

    with pytest.raises(ConfigError, match="not a multiple of micro_batch"):
        cfg(global_batch=10, micro_batch=4)


def _steps(folder):
    return [json.loads(x)["step"] for x in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("damage", ["cut short", "corrupted in place"])
def test_torn_latest_checkpoint_falls_back_and_the_log_keeps_each_step_once(
    tmp_path, shards, tokenizer, damage
):
    common = dict(total_steps=6, global_batch=8, micro_batch=4, save_every=2)
    full, part = tmp_path / "full", tmp_path / "part"
    run_main(["--config", str(TINY), *run_cfg(full, shards, tokenizer, **common)], tmp_path)
    run_main(
        ["--config", str(TINY), *run_cfg(part, shards, tokenizer, stop_after=4, **common)], tmp_path
    )
    assert _steps(part) == [1, 2, 3, 4]
    torn = max(
        (part / "checkpoints" / "step00000004").rglob("*.pt"), key=lambda p: p.stat().st_size
    )
    data = torn.read_bytes()
    if damage == "cut short":  # a save cut short
        torn.write_bytes(data[: len(data) // 2])
    else:  # the same size, other bytes in the middle (a bad disk, a stray write)
        middle = len(data) // 2
        torn.write_bytes(
            data[:middle]
            + bytes(b ^ 0x55 for b in data[middle : middle + 64])
            + data[middle + 64 :]
        )
    proc = run_main(
        ["--config", str(TINY), "--resume", *run_cfg(part, shards, tokenizer, **common)], tmp_path
    )
    assert "checkpoint step00000004 is not intact" in proc.stderr
    reason = "bytes" if damage == "cut short" else "differs from what was saved"
    assert reason in proc.stderr
    assert _steps(part) == [1, 2, 3, 4, 5, 6]  # steps 3 and 4 trained again, logged once
    assert (part / "param_sha256.rank0.txt").read_text() == (
        full / "param_sha256.rank0.txt"
    ).read_text()


def test_resume_refuses_other_data_by_name(tmp_path, shards, tokenizer):
    other = make_shards(tmp_path / "other", tokenizer, n_synthetic=30)
    common = dict(total_steps=4, global_batch=8, micro_batch=4, save_every=2)
    run_main(
        [
            "--config",
            str(TINY),
            *run_cfg(tmp_path / "r", shards, tokenizer, stop_after=2, **common),
        ],
        tmp_path,
    )
    args = ["--config", str(TINY), "--resume", *run_cfg(tmp_path / "r", other, tokenizer, **common)]
    proc = run_main(args, tmp_path, rc=2)
    assert "saved with other data" in proc.stderr and "shards: checkpoint" in proc.stderr
    run_main([*args, "--allow-data-change"], tmp_path)  # the user means it
    assert _steps(tmp_path / "r")[-1] == 4


def test_keep_last_prunes_and_overwrite_starts_over(tmp_path, shards, tokenizer):
    args = [
        "--config",
        str(TINY),
        *run_cfg(
            tmp_path / "r",
            shards,
            tokenizer,
            total_steps=4,
            global_batch=8,
            micro_batch=4,
            save_every=1,
            keep_last=2,
        ),
    ]
    run_main(args, tmp_path)
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("step*")) == [
        "step00000003",
        "step00000004",
    ]
    proc = run_main(args, tmp_path, rc=2)  # a finished run is not overwritten by accident
    assert "--overwrite" in proc.stderr
    run_main([*args, "--overwrite"], tmp_path)
    assert _steps(tmp_path / "r") == [1, 2, 3, 4]


FULL_DISK_AT_STEP_4 = """
import errno, sys
import torch

real = torch.save


def save(obj, f, *args, **kwargs):  # the disk fills up during step 4's checkpoint
    if "step00000004" in str(f):
        with open(f, "wb") as half:
            half.write(b"PK half a zip")
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        except OSError as exc:  # what torch's zip writer raises over it
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 "
                               "vs 13") from exc
    return real(obj, f, *args, **kwargs)


torch.save = save
sys.argv = ["train/pretrain.py", *sys.argv[1:]]
from train.pretrain import main

sys.exit(main())
"""


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_resumes_from_the_last(
    tmp_path, shards, tokenizer
):
    """ENOSPC inside DeepSpeed's save (torch's "unexpected pos"): exit 2 naming the
    checkpoint and the disk, no traceback; the checkpoint before it intact, this one
    never marked complete; `--resume` after freeing space goes on from step 2."""
    from train.checkpoints import intact

    out = tmp_path / "r"
    args = [
        "--config",
        str(TINY),
        *run_cfg(
            out, shards, tokenizer, total_steps=4, global_batch=8, micro_batch=4, save_every=2
        ),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_AT_STEP_4, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(said) == 1 and "saving checkpoint step00000004" in said[0], proc.stderr[-3000:]
    assert "no space left on its disk" in said[0] and "Traceback" not in proc.stderr
    assert intact(out / "checkpoints", "step00000002", 0) == ""
    assert intact(out / "checkpoints", "step00000004", 0) == "its save did not finish"
    run_main(["--resume", *args], tmp_path)  # space freed
    assert _steps(out) == [1, 2, 3, 4]  # step 2's checkpoint, then 3 and 4 once each
    assert intact(out / "checkpoints", "step00000004", 0) == ""


def test_sigterm_stops_pretraining_after_a_step_with_a_checkpoint(tmp_path, shards, tokenizer):
    import signal
    import time

    out = tmp_path / "r"
    args = [
        "--config",
        str(TINY),
        *run_cfg(
            out, shards, tokenizer, total_steps=500, global_batch=8, micro_batch=4, save_every=0
        ),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train" / "pretrain.py"), *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "log.jsonl").exists() and (out / "log.jsonl").read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    step = int(err.split("interrupted at step ")[1].split(" ")[0])
    assert "rerun with --resume" in err and "Traceback" not in err
    from train.checkpoints import intact

    assert intact(out / "checkpoints", f"step{step:08d}", 0) == ""
    resumed = run_cfg(out, shards, tokenizer, total_steps=step + 2, global_batch=8, micro_batch=4)
    run_main(["--config", str(TINY), "--resume", *resumed], tmp_path)
    assert _steps(out)[-3:] == [step, step + 1, step + 2]
