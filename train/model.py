"""Building BART for (intermediate) pre-training, and exporting it as a
Hugging Face folder."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskpt.core.errors import UserError
from maskpt.core.hub import check_local_or_hub, from_local_or_hub
from maskpt.core.tokenizer import save_tokenizer_files


@dataclass(frozen=True)
class ModelConfig:
    name_or_path: str = "facebook/bart-base"
    """`from_pretrained` name or folder (the paper starts from facebook/bart-base)."""
    config: dict[str, Any] = field(default_factory=dict)
    """If set: build a fresh BART from these BartConfig fields instead (tiny/offline runs)."""
    tokenizer: str = ""
    """Tokenizer name or folder; default: name_or_path. Must be the shards' tokenizer."""
    attn_implementation: str = "sdpa"
    """Attention kernel: sdpa (default) or eager."""

    def __post_init__(self) -> None:
        if not self.name_or_path and not self.config:
            raise ValueError("model: give name_or_path (a BART folder or hub name) or config")
        if not self.tokenizer_name:
            raise ValueError("model.tokenizer: give the shards' tokenizer (a folder or hub name)")

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer or self.name_or_path


def load_pretrained(name_or_path: str, **kwargs):
    """`BartForConditionalGeneration.from_pretrained`, with a one-line error
    naming the folder or hub name when it cannot be loaded."""
    from transformers import BartForConditionalGeneration

    check_local_or_hub(name_or_path, "model")
    try:
        return from_local_or_hub(
            BartForConditionalGeneration.from_pretrained, name_or_path, "model", **kwargs
        )
    except OSError as exc:
        where = "folder" if Path(name_or_path).exists() else "hub name (or missing folder)"
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"could not load model {name_or_path!r} ({where}): {first}") from exc


def build_model(cfg: ModelConfig, tokenizer, seed: int):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    if cfg.config:
        fields = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
            "forced_eos_token_id": tokenizer.eos_token_id,
            **cfg.config,
        }
        model = BartForConditionalGeneration(BartConfig(**fields))
    else:
        model = load_pretrained(cfg.name_or_path)
        if model.config.vocab_size < len(tokenizer):
            raise UserError(
                f"model {cfg.name_or_path} has {model.config.vocab_size} embeddings, the tokenizer "
                f"{len(tokenizer)} tokens"
            )
    model.config._attn_implementation = cfg.attn_implementation
    return model


PADDED_LOGIT_BIAS = -1e9
"""The bias of the padded vocabulary's logits: exp() of it is 0, so the
softmax over the real tokens (and the loss) is what it is unpadded."""


def pad_vocab(model, multiple: int):
    """Pad the embeddings and LM head to a multiple of `multiple` rows (an
    aligned GEMM width: 50,265 -> 50,304 at 64), the extra logits biased to
    `PADDED_LOGIT_BIAS`; `model.unpadded_vocab_size` keeps the real size."""
    import torch

    n = model.config.vocab_size
    model.unpadded_vocab_size = n
    padded = -(-n // multiple) * multiple
    if padded != n:
        model.resize_token_embeddings(padded, mean_resizing=False)
        with torch.no_grad():
            model.final_logits_bias[:, n:] = PADDED_LOGIT_BIAS
    return model


def unpadded_config(model):
    """The model's config with the vocabulary size it has outside training."""

    config = copy.deepcopy(model.config)
    config.vocab_size = getattr(model, "unpadded_vocab_size", config.vocab_size)
    return config


def fit_vocab(weights: dict, model) -> dict:
    """`weights` with the rows of a padded vocabulary cut to `model`'s size
    (a dimension is cut only where the model's is its vocabulary size)."""
    n = model.config.vocab_size
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    out = {}
    for key, value in weights.items():
        want = shapes.get(key)
        if want is not None and len(want) == value.dim() and tuple(value.shape) != want:
            for d, (have, size) in enumerate(zip(value.shape, want, strict=True)):
                if size == n and have > n:
                    value = value.narrow(d, 0, n)
            value = value.clone()
        out[key] = value
    return out


def save_skeleton(model, tokenizer, folder: Path) -> None:
    """The model's config and the tokenizer, without weights: what `maskpt
    export` needs to turn a checkpoint into a Hugging Face folder."""
    config = unpadded_config(model)
    config.save_pretrained(str(folder))
    save_tokenizer(tokenizer, folder, config)


def save_tokenizer(tokenizer, folder: Path, config) -> None:
    """`save_pretrained` of the tokenizer with `model_max_length` set to the
    model's positions, so that `truncation=True` keeps inputs the model can take."""
    positions = getattr(config, "max_position_embeddings", None)
    old = tokenizer.model_max_length
    try:
        if positions:
            tokenizer.model_max_length = int(positions)
        save_tokenizer_files(tokenizer, folder)
    finally:
        tokenizer.model_max_length = old


def export_pretrained(model, tokenizer, folder: str | Path) -> Path:
    """`save_pretrained` of model (safetensors, a padded vocabulary cut back)
    and tokenizer into `folder`, the tokenizer's `model_max_length` set to the model's positions so that
    `truncation=True` keeps inputs the model can take."""
    folder = Path(folder)
    config = unpadded_config(model)
    if config.vocab_size != model.config.vocab_size:  # trained padded: save the real rows
        unpadded = type(model)(config).to(next(model.parameters()).dtype)
        unpadded.load_state_dict(fit_vocab(model.state_dict(), unpadded))
        unpadded.tie_weights()
        model = unpadded
    model.save_pretrained(str(folder), safe_serialization=True)
    save_tokenizer(tokenizer, folder, model.config)
    return folder
