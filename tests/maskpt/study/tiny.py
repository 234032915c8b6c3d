"""A tiny study config: a tiny BART, a handful of documents, one tiny task."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from maskpt.core.config import merge
from tests.helpers import ROOT, bundled_texts, write_jsonl


def tiny_study(tmp_path: Path, tokenizer_dir: str, tiny_bart: str, tiny_qa: str, **changes) -> Path:
    """tmp_path/study.yaml: rows orig and rand, task zsre, every stage on CPU; `changes`
    merged over it."""
    data = tmp_path / "data"
    shutil.copytree(tiny_qa, data / "zsre")
    corpus = write_jsonl(tmp_path / "corpus.jsonl", bundled_texts(), prefix="d")
    study = {
        "name": "tiny",
        "out": str(tmp_path / "out"),
        "corpus": [str(corpus)],
        "base_model": tiny_bart,
        "tokenizer": tokenizer_dir,
        "data": str(data),
        "tasks": ["zsre"],
        "rows": [{"name": "orig", "policy": "orig_v1"}, {"name": "rand", "policy": "rand_v1"}],
        "preprocess_set": {"format": "arrow", "docs_per_unit": 20, "workers": 1},
        "pretrain": str(ROOT / "configs" / "pretrain" / "tiny_cpu.yaml"),
        "pretrain_set": {
            "model.config": {},
            "total_steps": 4,
            "global_batch": 4,
            "micro_batch": 2,
            "save_every": 2,
            "log_every": 1,
            "optim.warmup_steps": 1,
        },
        "finetune": str(ROOT / "configs" / "finetune" / "paper.yaml"),
        "sweep": {
            "lrs": [1e-3],
            "batch_sizes": [8],
            "seeds": [0],
            "finetune": {"max_steps": 4, "num_beams": 1, "warmup_steps": 0},
        },
        "resources": {
            "pretrain_gpus": 0,
            "pretrain_cpus": 1,
            "policy_gpus": 0,
            "finetune_gpus": 0,
        },
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(merge(study, changes)))
    return path
