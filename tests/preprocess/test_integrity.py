"""Nothing lost, nothing mixed, nothing silent in preprocessing: each test is
named after the fault it guards against (RELIABILITY.md lists them)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from maskpt.cli import main
from maskpt.core.io import FolderInUse
from preprocess.config import PreprocessConfig
from preprocess.inspection import iter_rows, verify
from preprocess.manifest import EmptyOutput, SpecMismatch
from preprocess.pipeline import run_preprocess
from tests.helpers import ROOT, bundled_texts, synthetic_texts, write_jsonl


def cfg(inp, out, tok, **kw):
    base = dict(
        inputs=(str(inp),),
        output=str(out),
        policy="rand_v1",
        tokenizer=tok,
        docs_per_unit=5,
        shard_size=7,
    )
    return PreprocessConfig(**{**base, **kw})


def _lines(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def _rows(folder):
    return sorted(json.dumps(r, sort_keys=True) for _, _, r in iter_rows(folder))


def test_duplicate_ids_are_skipped_and_counted_never_written_twice(tmp_path, tokenizer_dir):
    texts = synthetic_texts(14, seed=3)
    records = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    records[2]["id"] = "dupe"  # unit 0
    records[3]["id"] = "dupe"  # unit 0 again: within a unit
    records[11]["id"] = "dupe"  # unit 2: across units
    records[12]["id"] = "d1"  # unit 2 repeats an id of unit 0
    inp = _lines(tmp_path / "in.jsonl", records)
    for use_ray in (False, True):
        out = tmp_path / f"out-{use_ray}"
        index = run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=use_ray)
        c = index.counts
        assert c.documents_read == 14
        assert c.skipped_documents["duplicate_id"] == 3
        assert c.documents_read == c.documents_written + sum(c.skipped_documents.values())
        rows = [r for _, _, r in iter_rows(out)]
        assert len({r["id"] for r in rows}) == len(rows) == c.segments_written
        docs = {r["doc_id"]: r for r in rows}
        first = [r for r in rows if r["doc_id"] == "dupe"]
        assert first and all(r["original_ids"] == docs["dupe"]["original_ids"] for r in first)
        assert verify(out) == []
    assert _rows(tmp_path / "out-False") == _rows(tmp_path / "out-True")


def test_changed_input_of_the_same_size_is_refused_on_resume(tmp_path, tokenizer_dir, monkeypatch):
    import preprocess.pipeline

    texts = synthetic_texts(12, seed=5)
    inp = write_jsonl(tmp_path / "in.jsonl", texts)
    out = tmp_path / "out"

    def killed(*_):
        raise KeyboardInterrupt  # as if killed before the end

    monkeypatch.setattr(preprocess.pipeline, "finalize", killed)
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    monkeypatch.undo()
    assert (out / "_progress" / "run.json").exists() and not (out / "index.json").exists()
    lines = inp.read_text().splitlines()
    inp.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # reordered, same size
    with pytest.raises(SpecMismatch, match="inputs"):
        run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)


def test_same_tokenizer_and_input_by_another_path_resume(tmp_path, tokenizer_dir, monkeypatch):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(8, seed=6))
    out = tmp_path / "out"
    first = run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    assert first.inputs[0].path == "in.jsonl"  # recorded by name: the content identifies it
    monkeypatch.chdir(tmp_path)
    rel_tok = os.path.relpath(tokenizer_dir, tmp_path)
    again = run_preprocess(cfg("in.jsonl", "out", rel_tok), progress=False, use_ray=False)
    assert again.counts == first.counts  # the complete folder, not "another run"


def test_lone_surrogate_is_skipped_and_counted(tmp_path, tokenizer_dir, capsys):
    inp = _lines(
        tmp_path / "in.jsonl",
        [
            json.dumps({"id": "ok", "text": bundled_texts()[0]}),
            '{"id": "s", "text": "lone \\ud800 x."}',
            json.dumps({"text": "no id here."}),
        ],
    )
    index = run_preprocess(cfg(inp, tmp_path / "out", tokenizer_dir), progress=False, use_ray=False)
    assert index.counts.skipped_documents == {"invalid_text": 1, "missing_field:id": 1}
    assert (
        main(
            [
                "mask",
                "--policy",
                "rand_v1",
                "--tokenizer",
                tokenizer_dir,
                "--input",
                str(inp),
                "--show",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "invalid_text: 1" in out
    assert "missing_field:id" in out  # not rich's emoji for ":id:"


def test_empty_input_is_an_error_not_a_complete_folder(tmp_path, tokenizer_dir):
    inp = _lines(tmp_path / "empty.jsonl", [])
    with pytest.raises(EmptyOutput, match="nothing to write: 0 documents read"):
        run_preprocess(cfg(inp, tmp_path / "out", tokenizer_dir), progress=False, use_ray=False)
    assert not (tmp_path / "out" / "index.json").exists()


def test_output_into_an_unrelated_folder_is_refused(tmp_path, tokenizer_dir):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(4, seed=1))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FolderInUse, match="is not empty .*thesis.tex"):
        run_preprocess(cfg(inp, tmp_path / "mine", tokenizer_dir), progress=False, use_ray=False)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]


def test_deleted_shard_of_a_finished_unit_is_written_again(tmp_path, tokenizer_dir):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(20, seed=7))
    out = tmp_path / "out"
    run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    before = {p.name: p.read_bytes() for p in (out / "arrow").iterdir()}
    (out / "index.json").unlink()
    (out / "arrow" / "shard-000001.arrow").unlink()
    run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    assert {p.name: p.read_bytes() for p in (out / "arrow").iterdir()} == before
    assert verify(out) == []


def test_full_disk_while_writing_a_shard_leaves_nothing_taken_as_complete(
    tmp_path, tokenizer_dir, monkeypatch
):
    import preprocess.shards as shards

    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(20, seed=8))
    real, calls = shards.WRITERS["arrow"], []

    def full_disk(f, rows):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"half a shard")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, rows)

    monkeypatch.setitem(shards.WRITERS, "arrow", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    staged = out / "_progress" / "units"
    assert not [p for p in staged.iterdir() if p.name.startswith(".")]  # no temporary left
    markers = [json.loads(m.read_text()) for m in (out / "_progress").glob("*.done")]
    assert len(markers) < 4  # the unit cut short has none ...
    assert all((out / s["path"]).is_file() for m in markers for s in m["shards"])  # ... others do
    assert not (out / "index.json").exists()
    monkeypatch.setitem(shards.WRITERS, "arrow", real)  # space freed: the rerun completes
    run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    run_preprocess(cfg(inp, tmp_path / "ref", tokenizer_dir), progress=False, use_ray=False)
    assert _rows(out) == _rows(tmp_path / "ref") and verify(out) == []


def test_corrupted_string_buffer_is_named_by_shard_and_row(tmp_path, tokenizer_dir, capsys):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(6, seed=9), prefix="zzdoc")
    out = tmp_path / "out"
    run_preprocess(cfg(inp, out, tokenizer_dir), progress=False, use_ray=False)
    shard = out / "arrow" / "shard-000000.arrow"
    data = bytearray(shard.read_bytes())
    k = data.find(b"zzdoc1")
    data[k + 1] = 0xFF  # not UTF-8: the id column no longer decodes
    shard.write_bytes(bytes(data))
    assert main(["inspect", str(out), "--verify"]) == 1
    out_text = capsys.readouterr().out
    assert "arrow/shard-000000.arrow" in out_text and "row" in out_text and "decode" in out_text


def test_missing_folders_say_so(tmp_path, tokenizer_dir, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "no such shard folder" in capsys.readouterr().err
    assert (
        main(["pretrain", f"data.shards=[{tmp_path / 'nope'}]", f"model.tokenizer={tokenizer_dir}"])
        == 2
    )
    assert "no such shard folder" in capsys.readouterr().err
    t0 = time.monotonic()
    assert main(["mask", "--policy", "rand_v1", "--tokenizer", "./no/such/tok", "--text", "x"]) == 2
    assert "tokenizer './no/such/tok': no such folder" in capsys.readouterr().err
    assert time.monotonic() - t0 < 10  # no Hub retries for a path
    for cmd in (
        ["pretrain", f"data.shards=[{tmp_path}]", "model.name_or_path=./missing"],
        [
            "finetune",
            "--task",
            "nq",
            "--data-dir",
            str(tmp_path),
            "--model",
            "./missing",
            "--output-dir",
            str(tmp_path / "ft"),
        ],
    ):
        assert main(cmd) == 2  # the model named as the model, not as a missing tokenizer
        assert "model './missing': no such folder" in capsys.readouterr().err


INTERRUPTED_DRIVER = """
import time
from policies.rand import RandPolicy, RandConfig
from maskpt.core.errors import exit_on_user_error
from maskpt.core.tokenizer import load_tokenizer, TokenizerInfo
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess

class SlowRand(RandPolicy):
    name = "rand_v1"
    def annotate(self, segments):
        time.sleep(0.3)
        return super().annotate(segments)

tok = load_tokenizer({tok!r})
cfg = PreprocessConfig(inputs=({inp!r},), output={out!r}, policy="rand_v1", tokenizer={tok!r},
                       docs_per_unit=3, shard_size=9, workers=1, max_in_flight=1)
pol = SlowRand(RandConfig(), TokenizerInfo.from_tokenizer(tok))
raise SystemExit(exit_on_user_error("maskpt preprocess",
                 lambda: run_preprocess(cfg, policy=pol, progress=False, use_ray={ray})))
"""


@pytest.mark.parametrize("use_ray", [False, True])
def test_sigterm_stops_preprocessing_with_a_resume_hint(tmp_path, tokenizer_dir, use_ray):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(40, seed=10))
    out = tmp_path / "out"
    script = INTERRUPTED_DRIVER.format(tok=tokenizer_dir, inp=str(inp), out=str(out), ray=use_ray)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((out / "_progress").glob("*.done")):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err and "Traceback" not in err
    assert not (out / "index.json").exists()
    run_preprocess(
        cfg(inp, out, tokenizer_dir, docs_per_unit=3, shard_size=9), progress=False, use_ray=False
    )
    run_preprocess(
        cfg(inp, tmp_path / "ref", tokenizer_dir, docs_per_unit=3, shard_size=9),
        progress=False,
        use_ray=False,
    )
    assert _rows(out) == _rows(tmp_path / "ref")


def test_worker_writes_nothing_once_its_driver_is_gone(tmp_path, tokenizer, tok_info):
    import policies
    from maskpt.core.storage import Storage
    from preprocess.pipeline import DriverGone, MaskWorker
    from preprocess.plan import plan_units

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(4, seed=11))
    worker = MaskWorker.__new__(MaskWorker)  # as a Ray actor holds it, without Ray
    worker.tok, worker.policy = tokenizer, policies.create("rand_v1", tok_info)
    out = Storage(str(tmp_path / "out"))
    worker.args = (0, 64, out, ["arrow"], 10)
    worker.driver_pid = dead.pid
    unit = next(plan_units([inp], 10))
    with pytest.raises(DriverGone):
        worker.process(unit)
    assert not (tmp_path / "out").exists()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_driver_leaves_no_ray_process_and_no_worker_writing(tmp_path, tokenizer_dir):
    inp = write_jsonl(tmp_path / "in.jsonl", synthetic_texts(60, seed=13))
    out = tmp_path / "out"
    script = INTERRUPTED_DRIVER.format(tok=tokenizer_dir, inp=str(inp), out=str(out), ray=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "_progress").glob("*.done"))) < 2:
        assert proc.poll() is None
        time.sleep(0.1)
    from preprocess.ray_local import descendants

    ray_procs = descendants([proc.pid]) - {proc.pid}
    assert len(ray_procs) >= 3  # gcs, raylet, workers, agents
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = set((out / "_progress").glob("*.done"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(p) for p in ray_procs):
        time.sleep(0.5)
    assert not [p for p in ray_procs if _running(p)]  # nothing of its Ray outlives it
    assert set((out / "_progress").glob("*.done")) == done_at_kill  # and nothing wrote on
