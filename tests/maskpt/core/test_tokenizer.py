import pytest
from transformers import AutoTokenizer

from maskpt.core.tokenizer import (
    TokenizerError,
    TokenizerInfo,
    load_tokenizer,
    sentence_starts,
    tokenize_text,
    tokenizer_fingerprint,
    train_tokenizer,
    word_starts,
)
from tests.helpers import encode_segment


def test_trained_tokenizer_loads_with_autotokenizer(tokenizer, tmp_path):
    path = tokenizer.name_or_path
    again = AutoTokenizer.from_pretrained(path)
    assert again.convert_ids_to_tokens([0, 1, 2, 3, 4]) == [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
        "<mask>",
    ]
    assert again("Hello there")["input_ids"][0] == 0 and again("Hello there")["input_ids"][-1] == 2
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(tokenizer)


def test_fingerprint_differs_between_tokenizers(tokenizer, tmp_path):
    other = train_tokenizer(
        ["completely different text " * 20], tmp_path / "t", vocab_size=300, min_frequency=1
    )
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)


def test_word_ids_and_offsets_from_tokenizer(tokenizer):
    text = "The lighthouse, built in 1871, isn't tall.\n\nNew paragraph here."
    seg = encode_segment(tokenizer, text, "x-0")
    assert seg.input_ids[0] == 0 and seg.input_ids[-1] == 2
    assert seg.word_ids[0] == seg.word_ids[-1] == -1
    # offsets cover the text: every content token's span is its text
    ids, offsets = tokenize_text(tokenizer, text)
    assert list(seg.offsets[1:-1]) == offsets
    words = {}
    for i, w in enumerate(seg.word_ids[1:-1], 1):
        s, e = seg.offsets[i]
        words.setdefault(w, []).append(text[s:e])
    joined = ["".join(p) for p in words.values()]
    assert "lighthouse," in joined and "isn't" in joined and "1871," in joined
    assert [j for j in joined if j.strip()] == text.split()


def test_literal_special_tokens_in_text_stay_text(tokenizer, tok_info):
    seg = encode_segment(tokenizer, "write <mask> and </s> here", "x-0")
    assert tok_info.mask_id not in seg.input_ids[1:-1]
    assert tok_info.eos_id not in seg.input_ids[1:-1]


def test_sentence_starts():
    text = 'He left. "Why?" she asked! Then (e.g. later) it ended\nNew line'
    offsets = []
    pos = 0
    for piece in text.replace("\n", " \n ").split(" "):
        if not piece:
            continue
        s = text.index(piece, pos)
        offsets.append((s, s + len(piece)))
        pos = s + len(piece)
    ws = word_starts(text, offsets)
    ss = sentence_starts(text, offsets, ws)
    starts = [text[s:e] for (s, e), f in zip(offsets, ss) if f]
    # a rule, not a parser: "she" after a quoted question and "later)" after
    # "e.g." start sentences too (fairseq's full-stop rule has the same limits)
    assert starts == ["He", '"Why?"', "she", "Then", "later)", "New"]


def test_empty_and_too_long_are_clear_errors(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        encode_segment(tokenizer, "   \n ", "x-0")
    with pytest.raises(ValueError, match="max_length 16"):
        encode_segment(tokenizer, "word " * 40, "x-0", max_length=16)


def test_tokenizer_without_mask_is_refused(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ["some text here"] * 10, vocab_size=300, special_tokens=["<s>", "<pad>", "</s>"]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.save_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="mask"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(TokenizerError, match="maskpt tokenizer train"):
        TokenizerInfo.from_tokenizer(tok)


def test_missing_folder_says_how_to_train_one(tmp_path):
    with pytest.raises(TokenizerError, match="maskpt tokenizer train"):
        load_tokenizer(str(tmp_path / "nope"))


def test_a_hub_name_offline_fails_at_once_and_a_cached_one_loads(monkeypatch, tokenizer, tmp_path):
    """Offline first: a local folder, then the Hugging Face cache, then the Hub
    only when reachable; HF_HUB_OFFLINE means do not ask it at all."""
    from maskpt.core import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline()
    with pytest.raises(TokenizerError, match="not in the Hugging Face cache, and the Hub is"):
        load_tokenizer("maskpt-test/no-such-tokenizer")
    calls = []

    def load(name, **kw):  # a cache hit: the first, local-only call answers
        calls.append(kw)
        return AutoTokenizer.from_pretrained(tokenizer.name_or_path)

    assert hub.from_local_or_hub(load, "owner/cached", "tokenizer") is not None
    assert calls == [{"local_files_only": True}]
