"""`maskpt export CHECKPOINT OUT`: any saved pre-training step as a Hugging
Face folder (safetensors weights, config, tokenizer with the model's
`model_max_length`), loadable by `BartForConditionalGeneration.from_pretrained`.

CHECKPOINT is a step folder (`OUTPUT/checkpoints/step00060000`), the
checkpoints folder or the run folder (then: its newest intact step). The
weights are the fp32 master weights of the DeepSpeed checkpoint, gathered
from every rank's ZeRO partition (stages 1-3) or the module states (stage
0); the model's config and tokenizer come from OUTPUT/model, which the run
writes when it starts. Tied embeddings are tied again, not written twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskpt.core.errors import UserError
from maskpt.core.tokenizer import load_tokenizer
from train import checkpoints
from train.model import export_pretrained, fit_vocab


def find_step(path: Path) -> tuple[Path, Path, str]:
    """(run folder, checkpoints folder, tag) for a step, checkpoints or run folder."""

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such checkpoint folder")
    if path.name.startswith("step") and path.parent.name == "checkpoints":
        why = checkpoints.intact_on_every_rank(path.parent, path.name)
        if why:
            raise UserError(f"{path}: not an intact checkpoint ({why})")
        return path.parent.parent, path.parent, path.name
    ckpts = path if path.name == "checkpoints" else path / "checkpoints"
    for tag in checkpoints.tags(ckpts):
        if not checkpoints.intact_on_every_rank(ckpts, tag):
            return ckpts.parent, ckpts, tag
    raise UserError(f"{path}: no intact checkpoint in {ckpts}")


def state_dict(ckpts: Path, tag: str, stage: int) -> dict:
    """The fp32 weights of one checkpoint, whole."""
    import torch

    if stage == 0:
        states = torch.load(
            ckpts / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False
        )
        return {k: v.float() for k, v in states["module"].items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(ckpts), tag=tag)


def load_into(model, weights: dict, where: str) -> None:
    """Load `weights`; keys left out must be tied to loaded ones (embeddings)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    model.tie_weights()
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in weights if k in params}
    untied = [k for k in missing if k not in params or params[k].data_ptr() not in loaded]
    if untied or unexpected:
        raise UserError(
            f"{where}: weights do not fit the run's model (missing {untied}, "
            f"unexpected {unexpected})"
        )


def export_checkpoint(path: str | Path, out: str | Path) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration

    run, ckpts, tag = find_step(Path(path))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; give a new folder")
    skeleton = run / "model"
    if not (skeleton / "config.json").is_file():
        raise UserError(f"{skeleton}: no model config (the run predates `maskpt export`)")
    ds = json.loads((run / "deepspeed_config.json").read_text())
    stage = int(ds.get("zero_optimization", {}).get("stage", 0))
    model = BartForConditionalGeneration(BartConfig.from_pretrained(str(skeleton)))
    load_into(model, fit_vocab(state_dict(ckpts, tag, stage), model), f"{ckpts / tag}")
    export_pretrained(model, load_tokenizer(str(skeleton)), out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="maskpt export",
        description="Write a saved pre-training checkpoint as a Hugging Face folder "
        "(safetensors, config.json, tokenizer) that from_pretrained loads.",
    )
    ap.add_argument(
        "checkpoint",
        help="a step folder OUTPUT/checkpoints/stepN, or OUTPUT (its newest intact step)",
    )
    ap.add_argument("out", help="new folder for the model")
    args = ap.parse_args(argv)
    folder = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {folder} (from {args.checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
