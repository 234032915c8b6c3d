"""The workers' tokenizer gives what transformers gives, without importing it."""

import pickle
import subprocess
import sys

from maskpt.core.tokenizer import TokenizerInfo, tokenize_text
from maskpt.core.worker_tokenizer import WorkerTokenizer
from tests.helpers import ROOT, bundled_texts, synthetic_texts

TRICKY = [
    "",
    " ",
    "plain words",
    "  leading and trailing spaces  ",
    "a literal <mask> and <s> and </s> and <pad> in text",
    "<mask><mask>",
    "tabs\tand\nnew\n\nlines \r\n here",
    "Ünïcödé — “quotes” ‘and’ emoji 🙂 and 漢字 and العربية",
    "numbers 1,234.56 and e.g. abbreviations.",
]


def test_same_ids_and_offsets_as_the_transformers_tokenizer(tokenizer):
    worker = pickle.loads(pickle.dumps(WorkerTokenizer.from_tokenizer(tokenizer)))
    for text in TRICKY + bundled_texts() + synthetic_texts(50, seed=3):
        assert tokenize_text(worker, text) == tokenize_text(tokenizer, text), text[:80]


def test_same_special_ids_and_size(tokenizer):
    worker = pickle.loads(pickle.dumps(WorkerTokenizer.from_tokenizer(tokenizer)))
    assert len(worker) == len(tokenizer)
    assert TokenizerInfo.from_tokenizer(worker) == TokenizerInfo.from_tokenizer(tokenizer)


def test_the_driver_tokenizer_keeps_its_state(tokenizer):
    """Building a worker tokenizer changes nothing in the driver's."""
    before = tokenizer.backend_tokenizer.encode_special_tokens
    WorkerTokenizer.from_tokenizer(tokenizer)
    assert tokenizer.backend_tokenizer.encode_special_tokens == before


def test_a_worker_imports_neither_transformers_nor_torch(tokenizer):
    """What a preprocessing worker imports for a heuristic policy: the
    pipeline module, the unpickled tokenizer and policy, one document."""
    import policies

    worker = WorkerTokenizer.from_tokenizer(tokenizer)
    policy = policies.create("rand_v1", TokenizerInfo.from_tokenizer(tokenizer))
    blob = pickle.dumps((worker, policy)).hex()
    code = (
        "import pickle, sys\n"
        "import preprocess.pipeline\n"
        "from preprocess.segment import segment_document\n"
        f"tok, policy = pickle.loads(bytes.fromhex('{blob}'))\n"
        "segs = [s for s in segment_document(tok, 'd', 'Some text here. And more of it.', 128)]\n"
        "assert segs and policy.mask_batch(segs, seed=0)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_a_tokenizer_file_is_small_to_send_and_loads_the_same_tokenizer(tokenizer, tmp_path):
    import pytest

    from maskpt.core.storage import Storage

    wt = WorkerTokenizer.from_tokenizer(tokenizer)
    ref = wt.to_file(Storage(str(tmp_path)), "_progress/tokenizer.json")
    assert len(pickle.dumps(ref)) < 1000 < len(pickle.dumps(wt))  # the definition stays on disk
    back = pickle.loads(pickle.dumps(ref)).load()
    text = "Ada Lovelace wrote the first <mask> program."
    assert back.content_tokens(text) == wt.content_tokens(text)
    assert TokenizerInfo.from_tokenizer(back) == TokenizerInfo.from_tokenizer(wt)
    (tmp_path / "_progress" / "tokenizer.json").write_text(wt.definition.replace("a", "b", 1))
    with pytest.raises(RuntimeError, match="changed since the driver wrote it"):
        ref.load()
