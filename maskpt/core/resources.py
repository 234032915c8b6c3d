"""Files shipped inside the package."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def bundled_corpus() -> Path:
    """A small JSONL of English encyclopedia paragraphs ({"id","title","text"}),
    for tokenizers, tests and benchmarks that need real-looking text offline."""
    return Path(str(resources.files("maskpt.core") / "data" / "sample_paragraphs.jsonl"))


def bundled_texts() -> list[str]:
    """The `text` of every bundled paragraph."""

    return [json.loads(line)["text"] for line in bundled_corpus().read_text().splitlines()]
