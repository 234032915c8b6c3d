"""Deployed learned policies: `sup_v1` (supervised span extractor) and
`meta_v1` (meta-learned token masker), loaded from a checkpoint folder
(`policies/checkpoint.py`) and run as batched inference.

`setup(device)` loads the network once per worker onto "cuda" or "cpu";
`mask_batch` runs it over `batch_size` segments at a time. Decisions use the
segment's own generator (seed, policy, segment id), and scores are rounded
to 1e-3 before ranking or sampling so that CPU and GPU kernels, whose float
results differ in the last bits, make the same choices. Then the design's
post-processing: whole words, the 50% -> 30% cap, merged masks. A segment
for which the policy masks nothing is skipped and counted (`no_span`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from maskpt.core.batching import pad_ids
from maskpt.core.records import MaskedSegment, Segment, Skip
from policies.base import Policy
from policies.postprocess import finalize
from policies.registry import register

ROUND = 1000.0


class _Learned(Policy):
    wants_gpu = True

    def __init__(self, config, tokenizer_info):
        super().__init__(config, tokenizer_info)
        from policies import checkpoint

        if not config.checkpoint:
            from maskpt.core.config import ConfigError

            raise ConfigError(
                f"{self.name}: set policy_config.checkpoint (--policy-checkpoint DIR)"
            )
        # load (and so validate) now, on the driver, so a bad folder fails before any worker starts
        self.net = self._load()
        self.fingerprint = checkpoint.fingerprint(config.checkpoint)
        self.device = "cpu"

    def _load(self):
        from policies import checkpoint

        net, _ = checkpoint.load(self.config.checkpoint, self.name, self.tok.sha256,
                                 self.tok.vocab_size)  # fmt: skip
        return net

    def setup(self, device: str) -> None:
        self.device = device
        if self.net is None:  # a Ray worker: the network does not travel with the policy
            self.net = self._load()
        self.net.to(device)

    def __getstate__(self):
        return {**self.__dict__, "net": None}  # workers load the network in setup()

    def scores(self, ids, att) -> list:
        """One row of network output per segment (on the CPU), for `decide`."""
        raise NotImplementedError

    def decide(self, seg: Segment, row, rng) -> np.ndarray | None:
        raise NotImplementedError

    def mask_batch(self, segments, seed):
        if self.net is None:  # unpickled without setup()
            self.setup(self.device)
        out: list[MaskedSegment | Skip] = []
        for k in range(0, len(segments), self.config.batch_size):
            part = segments[k : k + self.config.batch_size]
            ids, att = pad_ids([s.input_ids for s in part], self.tok.pad_id)
            with torch.no_grad():
                rows = self.scores(ids.to(self.device), att.to(self.device))
            for seg, row in zip(part, rows, strict=True):
                rng = self.rng(seg, seed)
                mask = self.decide(seg, row, rng)
                if mask is None or not mask.any():
                    out.append(Skip(seg.id, "no_span"))
                    continue
                out.append(finalize(seg, mask, rng, self.tok, self.name, self.target_format,
                                    self.config.max_ratio, self.config.target_ratio))  # fmt: skip
        return out

    def mask(self, segment, seed):
        return self.mask_batch([segment], seed)[0]


@dataclass(frozen=True)
class LearnedConfig:
    """Fields every deployed learned policy has."""

    checkpoint: str = ""
    """Folder written by `maskpt train-policy`."""
    batch_size: int = 256
    """Segments per forward pass."""
    max_ratio: float = 0.5
    """Post-processing: above this masked share ..."""
    target_ratio: float = 0.3
    """... unmask whole words down to this share."""

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class SupPolicyConfig(LearnedConfig):
    mode: Literal["top1", "sample"] = "top1"
    """top1: the best span; sample: one of the top_k uniformly."""
    top_k: int = 5
    """Spans to sample from in `sample` mode."""
    max_span_length: int = 10
    """Longest span in tokens."""

    def __post_init__(self):
        super().__post_init__()
        if self.mode not in ("top1", "sample"):
            raise ValueError(f"mode must be top1 or sample, got {self.mode!r}")
        if self.top_k < 1 or self.max_span_length < 1:
            raise ValueError("top_k and max_span_length must be >= 1")


@register("sup_v1")
class SupervisedSpanPolicy(_Learned):
    config_cls = SupPolicyConfig
    target_format = "span"

    def scores(self, ids, att):
        from policies.networks import inner_positions, top_spans

        start, end = self.net(ids, att)
        start, end = (torch.round(x.float() * ROUND) / ROUND for x in (start, end))
        allowed = inner_positions(ids, att, self.tok.bos_id, self.tok.eos_id)
        k = 1 if self.config.mode == "top1" else self.config.top_k
        best, s, e = top_spans(start, end, allowed, self.config.max_span_length, k)
        return list(zip(best.cpu().tolist(), s.cpu().tolist(), e.cpu().tolist(), strict=True))

    def decide(self, seg, row, rng):
        best, starts, ends = row
        cands = [(i, j) for b, i, j in zip(best, starts, ends, strict=True) if b != float("-inf")]
        if not cands:
            return None
        i, j = cands[int(rng.integers(len(cands)))] if self.config.mode == "sample" else cands[0]
        mask = np.zeros(len(seg.input_ids), dtype=bool)
        mask[i : j + 1] = True
        return mask


@dataclass(frozen=True)
class MetaPolicyConfig(LearnedConfig):
    mode: Literal["sample", "argmax"] = "sample"
    """sample: mask each token with its predicted probability; argmax: where p > 0.5."""

    def __post_init__(self):
        super().__post_init__()
        if self.mode not in ("sample", "argmax"):
            raise ValueError(f"mode must be sample or argmax, got {self.mode!r}")


@register("meta_v1")
class MetaPolicy(_Learned):
    config_cls = MetaPolicyConfig
    target_format = "full"

    def scores(self, ids, att):
        p = torch.softmax(self.net(ids).float(), dim=-1)[..., 1]
        p = torch.round(p * ROUND) / ROUND
        return [
            row[: int(n)] for row, n in zip(p.cpu().numpy(), att.sum(1).cpu().tolist(), strict=True)
        ]

    def decide(self, seg, row, rng):
        content = np.array([w >= 0 for w in seg.word_ids])
        if self.config.mode == "argmax":
            return (row > 0.5) & content
        return (rng.random(len(row)) < row) & content
