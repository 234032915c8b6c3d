import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import policies
from maskpt.core.records import Skip
from policies.base import Policy, masked_span_example
from policies.rand import RandPolicy
from preprocess.config import PreprocessConfig
from preprocess.index import load_index
from preprocess.inspection import iter_rows, verify
from preprocess.manifest import SpecMismatch
from preprocess.pipeline import UnitFailed, actor_options, run_preprocess
from tests.helpers import bundled_texts, synthetic_texts, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _pickle_by_value(ray_local):
    # the test policies below live in this module, which Ray workers cannot import
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "docs.jsonl"
    texts = bundled_texts() + synthetic_texts(40, seed=8, sentences=(2, 12))
    write_jsonl(path, texts)
    with open(path, "ab") as f:
        f.write(b'{"id": "bad", "text": "caf\xe9"}\n{"id": "empty", "text": " "}\n')
    return path


def cfg(corpus, out, tokenizer_dir, **kw):
    base = dict(
        inputs=(str(corpus),),
        output=str(out),
        policy="rand_v1",
        tokenizer=tokenizer_dir,
        docs_per_unit=7,
        shard_size=9,
        workers=2,
    )
    base.update(kw)
    return PreprocessConfig(**base)


def rows_bytes(folder):
    return sorted(json.dumps(row, sort_keys=True) for _, _, row in iter_rows(folder))


def test_workers_and_shard_size_do_not_change_examples(corpus, tmp_path, tokenizer_dir):
    a = run_preprocess(cfg(corpus, tmp_path / "a", tokenizer_dir, workers=1), progress=False)
    b = run_preprocess(
        cfg(corpus, tmp_path / "b", tokenizer_dir, workers=2, shard_size=4), progress=False
    )
    assert rows_bytes(tmp_path / "a") == rows_bytes(tmp_path / "b")
    assert a.counts == b.counts
    c = a.counts.as_dict()
    assert c["documents_read"] == c["documents_written"] + sum(c["skipped_documents"].values())
    assert c["skipped_documents"] == {"empty_text": 1, "invalid_utf8": 1}
    assert len({s.path for s in b.shards}) > len({s.path for s in a.shards})
    # same shard size, other worker count: the very same files
    run_preprocess(cfg(corpus, tmp_path / "c", tokenizer_dir, workers=2), progress=False)
    for s in a.shards:
        assert (tmp_path / "c" / s.path).read_bytes() == (tmp_path / "a" / s.path).read_bytes()


def _strings(obj):
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_a_finished_folder_is_clean_and_carries_its_tokenizer(
    corpus, tmp_path, tokenizer_dir, capsys
):
    """No `_progress/` once complete, no local absolute path in index.json, and
    the tokenizer kept beside the shards: with the folder moved and the
    tokenizer's own folder gone, `maskpt inspect --show` still decodes rows."""
    import shutil

    from maskpt.cli import main
    from maskpt.core.tokenizer import load_tokenizer, tokenizer_fingerprint
    from preprocess.index import tokenizer_source

    own_tok = tmp_path / "my-tok"
    shutil.copytree(tokenizer_dir, own_tok)
    out = tmp_path / "made"
    run_preprocess(cfg(corpus, out, str(own_tok), workers=1), progress=False, use_ray=False)
    assert not (out / "_progress").exists()
    data = json.loads((out / "index.json").read_text())
    assert not [s for s in _strings(data) if os.path.isabs(s)]
    assert data["tokenizer"]["name"] == "my-tok" and data["inputs"][0]["path"] == "docs.jsonl"
    shutil.rmtree(own_tok)
    moved = tmp_path / "elsewhere"
    shutil.move(out, moved)
    index = load_index(moved)
    assert tokenizer_source(index) == str(moved / "tokenizer")
    tok = load_tokenizer(tokenizer_source(index))
    assert tokenizer_fingerprint(tok) == index.tokenizer.sha256
    stored = json.loads((moved / "tokenizer" / "tokenizer_config.json").read_text())
    assert "local_files_only" not in stored  # the copy does not pin its users offline
    capsys.readouterr()
    assert main(["inspect", str(moved), "--show", "1"]) == 0
    assert "<mask>" in capsys.readouterr().out
    # a crash between index.json and the cleanup: the rerun removes what was left
    (moved / "_progress").mkdir()
    (moved / "_progress" / "run.json").write_text("{}")
    again = run_preprocess(
        cfg(corpus, moved, str(tokenizer_dir), workers=1), progress=False, use_ray=False
    )
    assert again.counts == index.counts and not (moved / "_progress").exists()


def test_a_refused_run_leaves_no_folder_behind(corpus, tmp_path, tokenizer_dir):
    from maskpt.core.errors import UserError

    out = tmp_path / "new" / "out"
    bad = cfg(corpus, out, tokenizer_dir, policy_config={"mask_ratio": 7})
    with pytest.raises(UserError, match="mask_ratio"):
        run_preprocess(bad, progress=False, use_ray=False)
    with pytest.raises(UserError, match="tokenizer"):
        run_preprocess(cfg(corpus, out, str(tmp_path / "no-tok")), progress=False, use_ray=False)
    assert not (tmp_path / "new").exists()


def test_a_streamed_input_shows_the_bytes_read_against_its_size(tmp_path, tokenizer_dir, capsys):
    import gzip

    from tqdm import tqdm

    texts = synthetic_texts(30, seed=4)
    plain = write_jsonl(tmp_path / "docs.jsonl", texts)
    packed = tmp_path / "docs.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    run_preprocess(cfg(packed, tmp_path / "out", tokenizer_dir, workers=1), use_ray=False)
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(packed.stat().st_size)  # as the bar writes it
    assert "reading (driver): 100%" in err and f"{size}/{size}" in err
    assert "preprocess rand_v1" in err  # and the documents' bar (without a total: not known)


def test_both_formats_hold_the_same_rows_and_verify(corpus, tmp_path, tokenizer_dir):
    index = run_preprocess(
        cfg(corpus, tmp_path / "o", tokenizer_dir, format="both", policy="orig_v1"), progress=False
    )
    assert verify(tmp_path / "o") == []
    from maskpt.core.storage import Storage
    from preprocess.shards import read_rows

    store = Storage(str(tmp_path / "o"))
    for s in index.shards_of("arrow"):
        tar = s.path.replace("arrow/", "webdataset/").replace(".arrow", ".tar")
        assert list(read_rows(store, s.path, "arrow")) == list(read_rows(store, tar, "webdataset"))
    assert index.policy.target_format == "full"


def test_rerun_is_idempotent_and_other_specs_refused(corpus, tmp_path, tokenizer_dir):
    out = tmp_path / "x"
    first = run_preprocess(cfg(corpus, out, tokenizer_dir), progress=False)
    mtime = (out / "index.json").stat().st_mtime_ns
    assert run_preprocess(cfg(corpus, out, tokenizer_dir), progress=False) == first
    assert (out / "index.json").stat().st_mtime_ns == mtime
    for change in ({"seed": 1}, {"policy": "orig_v1"}, {"max_length": 64}):
        with pytest.raises(SpecMismatch, match="refusing to mix"):
            run_preprocess(cfg(corpus, out, tokenizer_dir, **change), progress=False)


def test_other_tokenizer_refused(corpus, tmp_path, tokenizer_dir):
    from maskpt.core.tokenizer import train_tokenizer

    other = tmp_path / "tok2"
    train_tokenizer(synthetic_texts(50, seed=4), other, vocab_size=500, min_frequency=1)
    run_preprocess(cfg(corpus, tmp_path / "y", tokenizer_dir), progress=False)
    with pytest.raises(SpecMismatch, match="tokenizer"):
        run_preprocess(cfg(corpus, tmp_path / "y", str(other)), progress=False)


@dataclass(frozen=True)
class FlakyConfig:
    flag: str = ""
    """While this file exists, masking a segment of document doc20 raises."""


class FlakyPolicy(RandPolicy):
    name = "flaky_v1"
    config_cls = FlakyConfig

    def draw(self, segment, ann, seed, epoch):
        if segment.doc_id == "doc20" and os.path.exists(self.config.flag):
            raise RuntimeError("injected failure")
        return masked_span_example(
            self, segment, [False, True] + [False] * (len(segment.input_ids) - 2)
        )


def test_worker_failure_then_resume(corpus, tmp_path, tokenizer_dir, tok_info):
    flag = tmp_path / "fail"
    flag.write_text("1")
    pol = FlakyPolicy(FlakyConfig(str(flag)), tok_info)
    out = tmp_path / "f"
    with pytest.raises(UnitFailed, match="unit 000-000002 failed"):
        run_preprocess(
            cfg(corpus, out, tokenizer_dir, workers=1, max_in_flight=1), policy=pol, progress=False
        )
    assert not (out / "index.json").exists()
    done_before = sorted(p.name for p in (out / "_progress").glob("*.done"))
    assert done_before and "000-000002.done" not in done_before
    flag.unlink()
    index = run_preprocess(cfg(corpus, out, tokenizer_dir, workers=1), policy=pol, progress=False)
    clean = run_preprocess(
        cfg(corpus, tmp_path / "g", tokenizer_dir, workers=2), policy=pol, progress=False
    )
    assert rows_bytes(out) == rows_bytes(tmp_path / "g")
    assert [s.sha256 for s in index.shards] == [s.sha256 for s in clean.shards]
    ids = [row["id"] for _, _, row in iter_rows(out)]
    assert len(ids) == len(set(ids))


SLOW_DRIVER = """
import sys, time
sys.path.insert(0, {root!r})
from policies.rand import RandPolicy, RandConfig
from maskpt.core.tokenizer import load_tokenizer, TokenizerInfo
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess

class SlowRand(RandPolicy):
    name = "rand_v1"
    def annotate(self, segments):
        time.sleep(0.4)
        return super().annotate(segments)

tok = load_tokenizer({tok!r})
cfg = PreprocessConfig(inputs=({inp!r},), output={out!r}, policy="rand_v1", tokenizer={tok!r},
                       docs_per_unit=4, shard_size=9, workers=1, max_in_flight=1)
run_preprocess(cfg, policy=SlowRand(RandConfig(), TokenizerInfo.from_tokenizer(tok)), progress=False)
"""


@pytest.mark.slow  # the worker-failure resume and the killed-driver cleanup tests stay fast
def test_driver_killed_then_resume(corpus, tmp_path, tokenizer_dir):
    out = tmp_path / "k"
    script = SLOW_DRIVER.format(root=str(ROOT), tok=tokenizer_dir, inp=str(corpus), out=str(out))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if len(list((out / "_progress").glob("*.done"))) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the driver finished before it could be killed"
    assert not (out / "index.json").exists()
    assert list((out / "_progress").glob("*.done"))
    staged = {
        (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "_progress" / "units").iterdir()
    }
    assert staged
    spec = dict(docs_per_unit=4, workers=2)
    run_preprocess(cfg(corpus, out, tokenizer_dir, **spec), progress=False)
    final = {(p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "arrow").iterdir()}
    assert staged <= final  # finished units were skipped, their shards renamed, not redone
    run_preprocess(cfg(corpus, tmp_path / "ref", tokenizer_dir, **spec), progress=False)
    assert rows_bytes(out) == rows_bytes(tmp_path / "ref")
    assert verify(out) == []


@dataclass(frozen=True)
class NoConfig:
    pass


class GpuTrivialPolicy(Policy):
    """Masks the first content token; wants a GPU, records the device it got."""

    name = "gpu_trivial_v1"
    config_cls = NoConfig
    wants_gpu = True
    device = None

    def setup(self, device):
        self.device = device

    def annotate(self, segments):
        if self.device is None:
            return [Skip(s.id, "not_set_up") for s in segments]
        return super().annotate(segments)

    def draw(self, segment, ann, seed, epoch):
        return masked_span_example(
            self, segment, [False, True] + [False] * (len(segment.input_ids) - 2)
        )


def test_gpu_policy_hook_falls_back_to_cpu_actors(corpus, tmp_path, tokenizer_dir, tok_info):
    pol = GpuTrivialPolicy(NoConfig(), tok_info)
    restart = {"max_restarts": -1, "max_task_retries": -1}  # a lost node's actor comes back
    assert actor_options(pol, {"CPU": 8, "GPU": 2}, 1.0) == {
        "num_cpus": 1,
        "num_gpus": 1.0,
        **restart,
    }
    assert actor_options(pol, {"CPU": 8}, 1.0) == {"num_cpus": 1, "num_gpus": 0, **restart}
    assert actor_options(policies.create("rand_v1", tok_info), {"GPU": 2}, 1.0)["num_gpus"] == 0
    index = run_preprocess(cfg(corpus, tmp_path / "gpu", tokenizer_dir), policy=pol, progress=False)
    assert index.counts.segments_written > 0
    assert "not_set_up" not in index.counts.skipped_segments


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["orig_v1", "rand_v1", "ssm_v1"])
def test_real_dump_sample_end_to_end(policy, shared_data, tmp_path, tokenizer_dir):
    from preprocess.wikipedia import RawPage, read_wikipedia_pages

    dump = shared_data / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    pages = list(read_wikipedia_pages(dump))
    articles = sum(isinstance(p, RawPage) for p in pages)
    out = tmp_path / policy
    index = run_preprocess(
        cfg(
            dump,
            out,
            tokenizer_dir,
            policy=policy,
            format="both",
            docs_per_unit=20,
            shard_size=2000,
        ),
        progress=False,
    )
    c = index.counts.as_dict()
    skipped = c["skipped_documents"]
    # every page is written or counted as skipped with a reason
    assert c["documents_read"] == len(pages) == 206
    assert c["documents_read"] == c["documents_written"] + sum(skipped.values())
    assert skipped["redirect"] + skipped["non_article_namespace"] == len(pages) - articles
    assert (
        c["documents_written"]
        + skipped.get("only_markup", 0)
        + skipped.get("all_segments_skipped", 0)
        == articles
    )
    assert c["documents_written"] > 100
    assert verify(out) == []  # checksums, schema, rows, counts; arrow == webdataset
    assert load_index(out).counts.as_dict() == c


def test_without_ray_gives_the_same_shards(corpus, tmp_path, tokenizer_dir):
    a = run_preprocess(cfg(corpus, tmp_path / "ray", tokenizer_dir), progress=False)
    b = run_preprocess(
        cfg(corpus, tmp_path / "local", tokenizer_dir), progress=False, use_ray=False
    )
    assert a == b


def test_output_to_a_file_url_from_ray_workers(corpus, tmp_path, tokenizer_dir):
    url = f"file://{tmp_path / 'remote'}"
    index = run_preprocess(cfg(corpus, url, tokenizer_dir, format="both"), progress=False)
    assert index.folder == url and (tmp_path / "remote" / "index.json").exists()
    assert verify(url) == []
    local = run_preprocess(
        cfg(corpus, tmp_path / "local", tokenizer_dir, format="both"), progress=False, use_ray=False
    )
    assert [s.sha256 for s in index.shards] == [s.sha256 for s in local.shards]


def test_unknown_scheme_or_unwritable_output_refused_before_work(corpus, tmp_path, capsys):
    from maskpt.cli import main

    args = ["preprocess", "--input", str(corpus), "--tokenizer", "no/such/tokenizer", "--quiet"]
    assert main([*args, "--output", "nosuchfs://bucket/shards"]) == 2
    assert "no filesystem for nosuchfs://" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main([*args, "--output", str(tmp_path / "file" / "shards")]) == 2
    assert "cannot write there" in capsys.readouterr().err  # before the tokenizer is loaded


def test_the_demos_embedded_ray_starts_its_own_where_another_is_recorded():
    """`ray_session("local", num_cpus=...)` (what `maskpt demo` runs) starts a Ray of its
    own even where RAY_ADDRESS (or a `ray start`, in /tmp/ray/ray_current_cluster) names
    another: plain `ray.init(num_cpus=...)` would try to join that one and refuse."""
    script = (
        "import ray\n"
        "from preprocess.pipeline import ray_session\n"
        "with ray_session('local', num_cpus=1):\n"
        "    print(ray.get(ray.remote(lambda: 41 + 1).remote()))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "42"
