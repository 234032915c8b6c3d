"""The tokenizer layer: load any Hugging Face tokenizer, train a small local one,
and turn text into `Segment`s whose word ids and offsets come from the
tokenizer's own offset mapping.

Words are whitespace-delimited, as in fairseq's BART (`mask_whole_words` marks a
GPT-2 BPE token as a word start when it begins with a space): a token starts a
new word when the character before its (trimmed) span is whitespace, when it
is the first content token, or when it is itself only whitespace. Punctuation
glued to a word ("Paris," or "don't") stays part of that word.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer, Tokenizer, processors

from maskpt.core.errors import UserError
from maskpt.core.hub import check_local_or_hub, from_local_or_hub
from maskpt.core.records import Segment

DEFAULT_TOKENIZER = "facebook/bart-base"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


class TokenizerError(UserError, ValueError):
    """A tokenizer that cannot be loaded or cannot be used for masking."""


@dataclass(frozen=True)
class TokenizerInfo:
    """The ids a masking policy needs, taken from a loaded tokenizer.

    Policies hold this instead of the tokenizer itself so they stay cheap to
    pickle into Ray workers.
    """

    name: str
    bos_id: int
    eos_id: int
    pad_id: int
    mask_id: int
    vocab_size: int
    special_ids: frozenset[int]
    sha256: str = ""
    """`tokenizer_fingerprint` of the tokenizer when asked for (learned policies
    check it against their checkpoint); empty otherwise."""

    @classmethod
    def from_tokenizer(cls, tokenizer, name: str = "", fingerprint: bool = False) -> TokenizerInfo:
        """The ids policies need; `fingerprint=True` also hashes the tokenizer
        (serialises it whole: do it once per run, not per document)."""
        name = name or getattr(tokenizer, "name_or_path", "") or "tokenizer"
        missing = [
            t
            for t in ("bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")
            if getattr(tokenizer, t, None) is None
        ]
        if missing:
            raise TokenizerError(
                f"tokenizer {name!r} has no {', '.join(m[:-3] for m in missing)}; masking "
                "policies need <s>, </s>, <pad> and <mask> (train one with "
                "`maskpt tokenizer train CORPUS OUT`, or use a BART tokenizer)"
            )
        return cls(
            name=name,
            bos_id=tokenizer.bos_token_id,
            eos_id=tokenizer.eos_token_id,
            pad_id=tokenizer.pad_token_id,
            mask_id=tokenizer.mask_token_id,
            vocab_size=len(tokenizer),
            special_ids=frozenset(tokenizer.all_special_ids),
            sha256=tokenizer_fingerprint(tokenizer) if fingerprint else "",
        )


def load_tokenizer(name_or_path: str = DEFAULT_TOKENIZER):
    """Load a fast Hugging Face tokenizer by hub name or local folder.

    Raises `TokenizerError` with a hint when the tokenizer cannot be found
    (offline, misspelled) or lacks the special tokens masking needs.
    """
    from transformers import AutoTokenizer

    try:
        check_local_or_hub(name_or_path, "tokenizer")
    except FileNotFoundError as exc:
        raise TokenizerError(
            f"{exc}; without network access, train one and pass its folder:\n"
            "  maskpt tokenizer train CORPUS.txt|.jsonl OUT_DIR"
        ) from None
    try:
        tok = from_local_or_hub(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")
    except FileNotFoundError as exc:  # offline and not cached: say what to do at once
        raise TokenizerError(
            f"{exc}. Train a local byte-level BPE tokenizer and pass its folder instead:\n"
            "  maskpt tokenizer train CORPUS.txt|.jsonl OUT_DIR\n  maskpt mask --tokenizer OUT_DIR ..."
        ) from None
    except (OSError, ValueError) as exc:
        where = "folder" if Path(name_or_path).exists() else "hub name"
        raise TokenizerError(
            f"could not load tokenizer {name_or_path!r} ({where}): {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}\n"
            "Without network access, train a local byte-level BPE tokenizer and pass its "
            "folder instead:\n  maskpt tokenizer train CORPUS.txt|.jsonl OUT_DIR\n"
            "  maskpt mask --tokenizer OUT_DIR ...\n"
            "(Set HF_HUB_OFFLINE=1 to fail at once instead of retrying the hub.)"
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(
            f"tokenizer {name_or_path!r} is not a fast (Rust) tokenizer; offsets are needed"
        )
    TokenizerInfo.from_tokenizer(tok, name_or_path)  # validates special tokens
    return tok


def save_tokenizer_files(tokenizer, folder) -> None:
    """`tokenizer.save_pretrained(folder)` without the load arguments that
    transformers writes back into `tokenizer_config.json` (`local_files_only`
    from an offline load would keep every later user of the copy offline)."""
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if isinstance(init_kwargs, dict):
        init_kwargs.pop("local_files_only", None)
    tokenizer.save_pretrained(str(folder))


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full serialized definition (vocab, merges,
    normalizer, special tokens): equal fingerprints mean equal tokenization."""
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None or backend.padding is not None:
        # calls with truncation=/padding= leave that state behind; it is not tokenization

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


def train_tokenizer(
    texts,
    out_dir: str | os.PathLike,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    progress: bool = False,
):
    """Train a byte-level BPE (BART/RoBERTa layout: `<s>`=0, `<pad>`=1,
    `</s>`=2, `<unk>`=3, `<mask>`=4) on an iterable of strings and save it so
    `AutoTokenizer.from_pretrained(out_dir)` loads it (`progress`: the
    tokenizers library's own bars for counting pairs and merging). Returns
    the loaded tokenizer."""
    from transformers import BartTokenizer

    if vocab_size < 300:
        raise TokenizerError(f"vocab_size must be >= 300 (256 bytes + specials), got {vocab_size}")
    bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    bpe.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=progress,
    )
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    tok = BartTokenizer(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tok.model_max_length = 1024
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer_files(tok, out)
    return load_tokenizer(str(out))


# --- text -> tokens ----------------------------------------------------------


def tokenize_text(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Content token ids and character offsets of `text`, without special
    tokens. Literal special-token strings in the text (e.g. "<mask>") are
    tokenized as ordinary text, never turned into special ids. A
    `WorkerTokenizer` (`maskpt.core.worker_tokenizer`) gives the same result
    without transformers."""
    content_tokens = getattr(tokenizer, "content_tokens", None)
    if content_tokens is not None:
        return content_tokens(text)
    enc = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        split_special_tokens=True,
        verbose=False,  # documents are longer than model_max_length by design
    )
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def word_starts(text: str, offsets) -> list[bool]:
    """For each content token, whether it begins a whitespace-delimited word."""
    starts = []
    for i, (s, e) in enumerate(offsets):
        if i == 0:
            starts.append(True)
            continue
        piece = text[s:e]
        starts.append(piece.isspace() or not piece or (s > 0 and text[s - 1].isspace()))
    return starts


def build_segment(
    seg_id: str,
    doc_id: str,
    text: str,
    ids: list[int],
    offsets: list[tuple[int, int]],
    info: TokenizerInfo,
) -> Segment:
    """Wrap content tokens (offsets relative to `text`) in `<s>` ... `</s>`."""
    word_ids: list[int] = [-1]
    w = -1
    for start in word_starts(text, offsets):
        w += start
        word_ids.append(w)
    word_ids.append(-1)
    return Segment(
        id=seg_id,
        doc_id=doc_id,
        text=text,
        input_ids=(info.bos_id, *ids, info.eos_id),
        word_ids=tuple(word_ids),
        offsets=((0, 0), *offsets, (0, 0)),
    )


CLOSERS = "\"')]}»”’"
# the end of a sentence: . ! or ? (closing quotes/brackets may follow) before
# whitespace or the end of the text; or a line break
_SENTENCE_BREAK = re.compile("[.!?][" + re.escape(CLOSERS) + "]*(?=\\s|$)|\n")


def sentence_starts(text: str, offsets, wstarts) -> list[bool]:
    """For each content token, whether it begins a sentence.

    A sentence begins at the first token and at the first word-start token
    after each sentence end: `.`, `!` or `?` (closing quotes and brackets
    allowed after it) followed by whitespace, or a line break. Whitespace-only
    tokens never begin a sentence. A rule, not a parser: abbreviations such as
    "e.g." end a sentence too, as fairseq's full-stop rule for BART's
    sentence permutation does.
    """
    n = len(offsets)
    starts = [False] * n
    if not n:
        return starts
    starts[0] = True
    token_starts = [s for s, _ in offsets]
    for m in _SENTENCE_BREAK.finditer(text):
        i = bisect.bisect_left(token_starts, m.end())
        while i < n:
            s, e = offsets[i]
            if wstarts[i] and e > s and not text[s:e].isspace():
                starts[i] = True
                break
            i += 1
    return starts
