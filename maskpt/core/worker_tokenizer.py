"""The tokenizer preprocessing workers use: what they need of a loaded
Hugging Face fast tokenizer — content tokens with offsets and the special
ids — on the `tokenizers` library alone.

A worker that loads a tokenizer through transformers imports torch with it:
about 1.5 s and 300 MB per worker before its first document, for policies
(`orig_v1`, `rand_v1`, `ssm_v1`) that never use torch. The driver builds a
`WorkerTokenizer` from the tokenizer it loaded and fingerprinted, and it
travels to the workers as that tokenizer's serialized definition (its
`tokenizer.json`), so workers tokenize with exactly that definition, whether
it came from a local folder or the hub cache. A Ray job writes the
definition into its output folder once (`to_file`) and gives its workers a
`TokenizerFile`: a few bytes of constructor arguments, where a definition of
megabytes would sit in Ray's object store, and an actor restarted on another
node would depend on that object still being there.

Tokenization is the one transformers performs for
`tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
split_special_tokens=True)` on a fast tokenizer: the backend's `encode`
with `encode_special_tokens` on, no truncation, no padding (a test compares
the two on every bundled document and on literal special-token strings).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tokenizers import Tokenizer

from maskpt.core.storage import Storage


class WorkerTokenizer:
    """A picklable stand-in for a fast tokenizer in `tokenize_text` and
    `TokenizerInfo.from_tokenizer`."""

    is_fast = True

    def __init__(
        self,
        definition: str,
        name_or_path: str,
        special: dict[str, int],
        all_special_ids: list[int],
    ):
        self.definition = definition
        self.name_or_path = name_or_path
        self.all_special_ids = list(all_special_ids)
        self.bos_token_id = special["bos"]
        self.eos_token_id = special["eos"]
        self.pad_token_id = special["pad"]
        self.mask_token_id = special["mask"]
        self.backend_tokenizer = self._backend(definition)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> WorkerTokenizer:
        """From a loaded Hugging Face fast tokenizer (its special ids checked
        by `load_tokenizer`)."""
        ids = {k: getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad", "mask")}
        return cls(
            tokenizer.backend_tokenizer.to_str(),
            tokenizer.name_or_path,
            ids,
            tokenizer.all_special_ids,
        )

    @staticmethod
    def _backend(definition: str):
        backend = Tokenizer.from_str(definition)
        backend.no_truncation()
        backend.no_padding()
        backend.encode_special_tokens = True  # "<mask>" in a text is text, not the mask id
        return backend

    def to_file(self, storage, rel: str) -> TokenizerFile:
        """Write the definition to `rel` in `storage`; the small reference to it."""
        data = self.definition.encode("utf-8")
        storage.write_bytes(rel, data)
        ids = {
            "bos": self.bos_token_id,
            "eos": self.eos_token_id,
            "pad": self.pad_token_id,
            "mask": self.mask_token_id,
        }
        return TokenizerFile(
            storage.url(rel),
            hashlib.sha256(data).hexdigest(),
            self.name_or_path,
            ids,
            tuple(self.all_special_ids),
        )

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def content_tokens(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of `text`, no special tokens added."""
        enc = self.backend_tokenizer.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "backend_tokenizer"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.backend_tokenizer = self._backend(self.definition)


@dataclass(frozen=True)
class TokenizerFile:
    """Where a `WorkerTokenizer`'s definition was written, and its sha256."""

    url: str
    sha256: str
    name_or_path: str
    special: dict
    all_special_ids: tuple

    def load(self) -> WorkerTokenizer:
        """The tokenizer; a changed or truncated file is refused by its checksum."""

        data = Storage(self.url).read_bytes("")
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise RuntimeError(
                f"{self.url}: the tokenizer definition changed since the "
                "driver wrote it (checksum differs)"
            )
        return WorkerTokenizer(
            data.decode("utf-8"), self.name_or_path, self.special, list(self.all_special_ids)
        )
