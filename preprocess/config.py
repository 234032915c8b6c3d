"""Configuration of `maskpt preprocess` (YAML via `--config`, CLI flags and
`KEY=VALUE` overrides all fill this one dataclass; see `maskpt preprocess --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maskpt.core.config import require_at_least_one
from maskpt.core.tokenizer import DEFAULT_TOKENIZER
from preprocess.shards import FORMATS

FORMAT_ALIASES = {"both": ("arrow", "webdataset"), "all": tuple(FORMATS)}


def parse_formats(text: str) -> list[str]:
    """`arrow,parquet` -> ["arrow", "parquet"] in the canonical order; aliases
    both and all; ValueError naming an unknown one."""
    names: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if part not in FORMATS and part not in FORMAT_ALIASES:
            raise ValueError(
                f"format: {part!r} is not one of {', '.join([*FORMATS, *FORMAT_ALIASES])}"
            )
        names.update(FORMAT_ALIASES.get(part, (part,)))
    return [f for f in FORMATS if f in names]


@dataclass(frozen=True)
class PreprocessConfig:
    inputs: tuple[str, ...] = ()
    """Input files or fsspec URLs: Wikipedia dumps (.xml, .xml.bz2 with its -index.txt.bz2
    beside it to be split), JSONL ({"id","title","text"}; .jsonl, .jsonl.gz, .jsonl.zst),
    Parquet (id, text[, title] columns) or .txt (blank-line separated documents)."""
    output: str = ""
    """Shard folder to write: a local path or any fsspec URL (s3://, gs://, file://); on a
    cluster, storage every node shares. index.json appears when it is complete."""
    policy: str = "orig_v1"
    """Registered masking policy name."""
    policy_config: dict[str, Any] = field(default_factory=dict)
    """Overrides of the policy's config dataclass."""
    tokenizer: str = DEFAULT_TOKENIZER
    """Hugging Face tokenizer name or folder (must match the model trained later)."""
    seed: int = 0
    """Masking seed."""
    max_length: int = 128
    """Tokens per segment, <s> and </s> included (the paper: 128)."""
    format: str = "arrow"
    """Shard formats, comma-separated: arrow (Arrow IPC stream), parquet, webdataset; or
    both (arrow,webdataset) or all. The same rows in each."""
    shard_size: int = 10_000
    """Most examples per shard file."""
    docs_per_unit: int = 500
    """Documents per unit of work: the resumable, deterministic slice of the input."""
    workers: int = 0
    """Worker actors; 0 = one per CPU Ray reports."""
    address: str | None = None
    """Ray address, as `ray.init` takes it: "auto" joins the running cluster; None joins
    the one in RAY_ADDRESS or last started by `ray start` on this machine, else starts an
    embedded local Ray; "local" always starts an embedded one."""
    gpus_per_worker: float = 1.0
    """GPUs per actor for policies that want a GPU, when the cluster has GPUs."""
    max_in_flight: int = 2
    """Units queued per worker (bounds driver memory)."""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("give at least one input file")
        if not self.output:
            raise ValueError("output folder is required")
        parse_formats(self.format)
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        require_at_least_one(self, "shard_size", "docs_per_unit", "max_in_flight")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    @property
    def formats(self) -> list[str]:
        return parse_formats(self.format)
