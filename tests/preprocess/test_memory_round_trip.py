"""Output to fsspec's memory:// store: preprocess -> inspect --verify ->
pre-training a few steps, in one process, with nothing written to the
working directory."""

import os
import subprocess
import sys
import textwrap

from tests.helpers import ROOT, write_jsonl

SCRIPT = textwrap.dedent(
    """
    import sys
    from maskpt.cli import main
    docs, tok, out = sys.argv[1:4]
    url = "memory://maskpt-test/shards"
    assert main(["preprocess", "--input", docs, "--output", url, "--tokenizer", tok,
                 "--policy", "rand_v1", "--format", "all", "max_length=64", "shard_size=40",
                 "--no-ray", "--quiet"]) == 0
    assert main(["inspect", url, "--verify"]) == 0
    # the folder's own tokenizer, fetched from the store into a local folder, twice alike
    from maskpt.core.tokenizer import load_tokenizer, tokenizer_fingerprint
    from preprocess.index import load_index, tokenizer_source
    index = load_index(url)
    local = tokenizer_source(index)
    assert "://" not in local and tokenizer_source(index) == local
    assert tokenizer_fingerprint(load_tokenizer(local)) == index.tokenizer.sha256
    assert main(["inspect", url, "--show", "1"]) == 0
    assert main(["pretrain", "--config", sys.argv[4], f"data.shards=[{url}]",
                 f"model.tokenizer={tok}", f"output_dir={out}", "max_length=64",
                 "model.config.max_position_embeddings=80", "total_steps=2", "global_batch=4",
                 "micro_batch=2", "log_every=1", "export=false"]) == 0
    """
)


def test_memory_url_round_trip(tmp_path, tokenizer_dir):
    from tests.helpers import bundled_texts

    docs = write_jsonl(tmp_path / "docs.jsonl", bundled_texts())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(docs),
            tokenizer_dir,
            str(tmp_path / "run"),
            str(ROOT / "configs" / "pretrain" / "tiny_cpu.yaml"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "OK memory://maskpt-test/shards" in proc.stdout
    assert list(cwd.iterdir()) == []  # nothing written where it ran
    assert (tmp_path / "run" / "log.jsonl").read_text().count("\n") == 2
