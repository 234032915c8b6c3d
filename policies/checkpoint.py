"""Learned-policy checkpoint folders (written by `maskpt train-policy`,
read by `sup_v1` / `meta_v1`):

    DIR/
      policy.json          format, policy name, network arguments, tokenizer
                           fingerprint and vocab size, training summary
      model.safetensors    the network's weights (no pickle)
      tokenizer files      the tokenizer the policy assumes (save_pretrained)

Loading checks, with errors naming the folder and file: the files exist,
the checkpoint is for the asked policy, the tokenizer matches the one the
shards will use, and every weight is finite.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maskpt.core.errors import UserError
from maskpt.core.tokenizer import save_tokenizer_files, tokenizer_fingerprint

FORMAT = 1
META = "policy.json"
WEIGHTS = "model.safetensors"


class PolicyCheckpointError(UserError, ValueError):
    pass


def save(folder, policy: str, network, args: dict, tokenizer, info: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    save_tokenizer_files(tokenizer, folder)
    meta = {
        "format": FORMAT,
        "policy": policy,
        "network": args,
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "vocab_size": len(tokenizer),
        "training": info or {},
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def fingerprint(folder) -> str:
    """sha256 of the weights and metadata: shard manifests record it."""
    h = hashlib.sha256()
    for name in (META, WEIGHTS):
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()


def load(folder, policy: str, build, tokenizer_sha256: str = "", vocab_size: int = 0):
    """(network in eval mode, metadata) of a checkpoint for `policy`, its network made by
    `build(arguments saved in policy.json)` (the policy class's `build_network`); the
    tokenizer is checked by fingerprint and/or vocabulary size when given."""

    folder = Path(folder)
    for name in (META, WEIGHTS):
        if not (folder / name).is_file():
            raise PolicyCheckpointError(f"policy checkpoint {folder}: {name} is missing")
    try:
        meta = json.loads((folder / META).read_text())
    except json.JSONDecodeError as exc:
        raise PolicyCheckpointError(f"{folder / META}: not valid JSON ({exc})") from exc
    if meta.get("policy") != policy:
        raise PolicyCheckpointError(
            f"{folder / META}: a checkpoint for {meta.get('policy')!r}, not {policy!r}"
        )
    if tokenizer_sha256 and meta.get("tokenizer_sha256") != tokenizer_sha256:
        raise PolicyCheckpointError(
            f"{folder}: trained with another tokenizer (fingerprint "
            f"{str(meta.get('tokenizer_sha256'))[:12]}..., this run's {tokenizer_sha256[:12]}...); "
            "use the tokenizer saved in the checkpoint folder"
        )
    if vocab_size and meta.get("vocab_size") != vocab_size:
        raise PolicyCheckpointError(
            f"{folder}: trained with another tokenizer ({meta.get('vocab_size')} tokens, this "
            f"run's {vocab_size}); use the tokenizer saved in the checkpoint folder"
        )
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as exc:
        raise PolicyCheckpointError(f"{folder / WEIGHTS}: cannot read weights ({exc})") from exc
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise PolicyCheckpointError(f"{folder / WEIGHTS}: tensor {name!r} has NaN/inf values")
    net = build(meta.get("network", {}))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise PolicyCheckpointError(
            f"{folder / WEIGHTS}: does not fit the network ({exc})"
        ) from exc
    return net.eval(), meta
