"""Deployed learned policies: `sup_v1` (supervised span extractor) and
`meta_v1` (meta-learned token masker), loaded from a checkpoint folder
(`policies/checkpoint.py`).

Annotation (preprocessing, batched inference): `setup(device)` loads the
network once per worker onto "cuda" or "cpu", and `annotate` runs it over
`batch_size` segments at a time. Scores are rounded to 1e-3 so that CPU and
GPU kernels, whose float results differ in the last bits, store the same
annotation (in full fp32: no TF32 in cuDNN; ties ranked by position), except
where a score lies within float error of a rounding boundary: `sup_v1` its
top_k candidate spans, best first (a segment with none is skipped as
`no_span`); `meta_v1` each token's mask probability in thousandths (a
segment whose every probability is 0 is skipped as `no_span`).

Draw (every epoch, no network needed): `sup_v1` the best span (`top1`) or one
of the stored ones uniformly (`sample`); `meta_v1` each content token with
its probability (`sample`; if none comes up, the most probable one) or those
above 0.5 (`argmax`). Then the design's post-processing: whole words, the
50% -> 30% cap, merged masks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from maskpt.core.config import ConfigError
from maskpt.core.records import MaskedSegment, Segment, Skip
from policies.base import BASE_KINDS, Annotation, Policy, base_annotation
from policies.postprocess import finalize
from policies.registry import register

ROUND = 1000.0


class _Learned(Policy):
    wants_gpu = True

    def __init__(self, config, tokenizer_info, annotating: bool = True):
        super().__init__(config, tokenizer_info)
        from policies import checkpoint

        self.net, self.fingerprint, self.device = None, "", "cpu"
        if not annotating:  # draws read the stored annotation: no network needed
            return
        if not config.checkpoint:
            raise ConfigError(
                f"{self.name}: set policy_config.checkpoint (--policy-checkpoint DIR)"
            )
        # load (and so validate) now, on the driver, so a bad folder fails before any worker starts
        self.net = self._load()
        self.fingerprint = checkpoint.fingerprint(config.checkpoint)

    def _load(self):
        from policies import checkpoint

        net, _ = checkpoint.load(
            self.config.checkpoint,
            self.name,
            self.build_network,
            self.tok.sha256,
            self.tok.vocab_size,
        )
        return net

    def setup(self, device: str) -> None:
        self.device = device
        if self.net is None:  # a Ray worker: the network does not travel with the policy
            self.net = self._load()
        self.net.to(device)

    def __getstate__(self):
        return {**self.__dict__, "net": None}  # workers load the network in setup()

    @staticmethod
    def build_network(args: dict):
        """The policy's network, untrained, from the arguments its checkpoint saved."""
        raise NotImplementedError

    def scores(self, ids, att) -> list:
        """One row of network output per segment (on the CPU), for `annotation`."""
        raise NotImplementedError

    def annotation(self, seg: Segment, row) -> Annotation | Skip:
        raise NotImplementedError

    def annotate(self, segments) -> list[Annotation | Skip]:
        import torch

        from maskpt.core.batching import pad_ids

        if self.net is None:  # unpickled without setup()
            self.setup(self.device)
        out: list[Annotation | Skip] = []
        for k in range(0, len(segments), self.config.batch_size):
            part = segments[k : k + self.config.batch_size]
            ids, att = pad_ids([s.input_ids for s in part], self.tok.pad_id)
            # full fp32 in cuDNN (its LSTM may use TF32, ~1e-3 off: enough to move a
            # score across a rounding boundary), so GPU annotations match CPU ones
            with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                rows = self.scores(ids.to(self.device), att.to(self.device))
            out += [self.annotation(seg, row) for seg, row in zip(part, rows, strict=True)]
        return out

    def _finalize(self, segment: Segment, mask, rng) -> MaskedSegment:
        return finalize(
            segment,
            mask,
            rng,
            self.tok,
            self.name,
            self.target_format,
            self.config.max_ratio,
            self.config.target_ratio,
        )


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
    needs = frozenset({"words", "ranked_spans"})
    provides = BASE_KINDS | {"ranked_spans"}

    @staticmethod
    def build_network(args: dict):
        from policies.networks import SpanExtractor

        return SpanExtractor(**args)

    def scores(self, ids, att):
        import torch

        from policies.networks import inner_positions, top_spans

        start, end = self.net(ids, att)
        start, end = (torch.round(x.float() * ROUND) / ROUND for x in (start, end))
        allowed = inner_positions(ids, att, self.tok.bos_id, self.tok.eos_id)
        best, s, e = top_spans(start, end, allowed, self.config.max_span_length, self.config.top_k)
        return list(zip(best.cpu().tolist(), s.cpu().tolist(), e.cpu().tolist(), strict=True))

    def annotation(self, seg, row):
        best, starts, ends = row
        spans = tuple(
            (i, j + 1) for b, i, j in zip(best, starts, ends, strict=True) if b != float("-inf")
        )
        return replace(base_annotation(seg), spans=spans) if spans else Skip(seg.id, "no_span")

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        rng = self.rng(segment, seed, epoch)
        spans = ann.spans[: self.config.top_k]
        i, j = spans[int(rng.integers(len(spans)))] if self.config.mode == "sample" else spans[0]
        mask = np.zeros(len(segment.input_ids), dtype=bool)
        mask[i:j] = True
        return self._finalize(segment, mask, rng)


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
    needs = frozenset({"words", "token_probs"})
    provides = BASE_KINDS | {"token_probs"}

    @staticmethod
    def build_network(args: dict):
        import torch

        from policies.networks import MetaMasker

        args = dict(args)
        return MetaMasker(torch.zeros(args.pop("embedding_shape")), **args)

    def scores(self, ids, att):
        import torch

        p = torch.softmax(self.net(ids).float(), dim=-1)[..., 1]
        p = torch.round(p * ROUND).to(torch.int64)
        return [
            row[: int(n)].tolist()
            for row, n in zip(p.cpu(), att.sum(1).cpu().tolist(), strict=True)
        ]

    def annotation(self, seg, row):
        content = [w >= 0 for w in seg.word_ids]
        probs = tuple(int(p) if c else 0 for p, c in zip(row, content, strict=True))
        return (
            replace(base_annotation(seg), token_probs=probs)
            if any(probs)
            else Skip(seg.id, "no_span")
        )

    def token_mask(self, token_probs, rng) -> np.ndarray:
        """The tokens chosen before post-processing: each with its probability
        (sample) or those above 0.5 (argmax); the most probable one if none."""
        p = np.asarray(token_probs, dtype=np.float64) / ROUND
        mask = p > 0.5 if self.config.mode == "argmax" else rng.random(len(p)) < p
        if not mask.any():
            mask[int(np.argmax(p))] = True
        return mask

    def draw(self, segment: Segment, ann: Annotation, seed: int, epoch: int) -> MaskedSegment:
        rng = self.rng(segment, seed, epoch)
        return self._finalize(segment, self.token_mask(ann.token_probs, rng), rng)
