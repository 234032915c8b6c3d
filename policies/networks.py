"""The learned policies' networks (torch only; no I/O).

- `SpanExtractor` (`sup_v1`): embeddings initialised from a BART embedding
  matrix, a 2-layer BiLSTM (hidden 300 per direction), start and end heads.
  `top_spans` ranks spans by start + end logit with a maximum length.
- `MetaMasker` (`meta_v1`): frozen BART embeddings, Conv1d (kernel 3) and two
  linear layers -> 2 logits per token (keep, mask); hidden 512 gives the
  paper's ~40 M parameters with BART-base's (frozen) embeddings. `gumbel_mask`
  is the straight-through hard Gumbel-softmax used in training;
  `budget_regulariser` the paper's Eq. 7 (on sampled masks, or on the
  expected count when given probabilities).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SpanExtractor(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden: int = 300,
        layers: int = 2,
        dropout: float = 0.1,
        pad_id: int = 1,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden,
            num_layers=layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.start = nn.Linear(2 * hidden, 1)
        self.end = nn.Linear(2 * hidden, 1)

    def forward(self, ids: torch.Tensor, attention: torch.Tensor):
        """(start, end) logits [B, L]; padding gets -inf."""
        lengths = attention.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(self.embed(ids)), lengths, batch_first=True, enforce_sorted=False
        )
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=ids.size(1))
        h = self.drop(h)
        neg = torch.finfo(h.dtype).min
        start = self.start(h).squeeze(-1).masked_fill(attention == 0, neg)
        end = self.end(h).squeeze(-1).masked_fill(attention == 0, neg)
        return start, end


def inner_positions(ids: torch.Tensor, att: torch.Tensor, bos_id: int, eos_id: int):
    """Real tokens other than <s> and </s>: where a span may start or end."""
    return att.bool() & (ids != bos_id) & (ids != eos_id)


def top_spans(
    start: torch.Tensor, end: torch.Tensor, allowed: torch.Tensor, max_len: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best spans per row: (scores, starts, ends), each [B, k].
    A span (i, j) needs i <= j < i + max_len and both ends `allowed`; where
    fewer spans qualify, the rest of the row has score -inf.
    Equal scores (frequent once scores are rounded) rank by position, the
    earlier start (then end) first, on every device: `topk` leaves the order
    of ties to the kernel, and CPU and CUDA kernels choose differently.
    Only the band of lengths is scored: [B, L, max_len], not [B, L, L]."""
    length = start.size(1)
    i = torch.arange(length, device=start.device)
    j = i[:, None] + torch.arange(max_len, device=start.device)[None, :]  # [L, max_len]
    jc = j.clamp(max=length - 1)
    ok = (j < length)[None] & allowed[:, :, None] & allowed[:, jc]
    scores = (start[:, :, None] + end[:, jc]).float().masked_fill(~ok, float("-inf"))
    flat_scores = scores.flatten(1)  # index i * max_len + (j - i): ordered like (i, j)
    _, flat = _rank_key(flat_scores).topk(min(k, flat_scores.size(1)), dim=1)
    starts = flat // max_len
    return flat_scores.gather(1, flat), starts, starts + flat % max_len


def _rank_key(scores: torch.Tensor) -> torch.Tensor:
    """int64 keys in the order of the float32 `scores` [B, N], unique within
    a row: the float's bits made monotonic, then N - 1 - index (lower index,
    higher key). Exact, unlike adding a small multiple of the index; + 0.0
    makes -0.0 the same key as 0.0."""
    n = scores.size(1)
    bits = (scores + 0.0).contiguous().view(torch.int32).to(torch.int64)
    monotonic = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    index = torch.arange(n, device=scores.device, dtype=torch.int64)
    return monotonic * n + (n - 1 - index)


class MetaMasker(nn.Module):
    def __init__(self, embeddings: torch.Tensor, hidden: int = 512, pad_id: int = 1):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(
            embeddings.detach().clone(), freeze=True, padding_idx=pad_id
        )
        dim = embeddings.size(1)
        self.conv = nn.Conv1d(dim, hidden, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, L, 2] of (keep, mask) per token."""
        h = torch.relu(self.conv(self.embed(ids).transpose(1, 2))).transpose(1, 2)
        return self.fc2(torch.relu(self.fc1(h)))

    @torch.no_grad()
    def start_at(self, rate: float) -> None:
        """Every token starts at p(mask) ≈ `rate`: the output layer's weights
        shrunk 100x and its bias set to the rate's log-odds. A default
        initialisation starts near 0.5, far outside a 15% budget."""
        rate = min(max(rate, 1e-4), 1 - 1e-4)
        self.fc2.weight.mul_(0.01)
        self.fc2.bias.copy_(torch.tensor([0.0, math.log(rate / (1 - rate))]))


def gumbel_noise(shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel(0, 1) noise drawn on the CPU (the same draws on every device)."""
    u = torch.rand(shape, generator=generator, device="cpu")
    return -torch.log((-torch.log(u.clamp(1e-10, 1.0))).clamp_min(1e-10))


def gumbel_mask(logits: torch.Tensor, tau: float, noise: torch.Tensor) -> torch.Tensor:
    """Straight-through hard Gumbel-softmax: a 0/1 mask [B, L] in the forward
    pass whose gradient is that of the soft sample. `noise` comes from
    `gumbel_noise(logits.shape, ...)`, drawn by the caller so that two
    policies can be compared on the same draws."""
    soft = torch.softmax((logits + noise.to(logits.device)) / tau, dim=-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), 2).to(soft.dtype)
    return (hard - soft.detach() + soft)[..., 1]


def budget_regulariser(
    mask: torch.Tensor, content: torch.Tensor, gamma: float = 0.15, eps: float = 0.05
) -> torch.Tensor:
    """The paper's Eq. 7 (Algorithm 1, line 7), per sequence and in token counts:

        L_reg(x, d) = δ[|γ·l(x) − l(d)| > ε·l(x)] · (γ·l(x) − l(d))²

    with l(x) the sequence's maskable (content) tokens, l(d) those the mask d
    masks, δ the indicator; averaged over the batch. `mask` and `content` are
    [B, L]; the gradient flows through l(d) where the indicator is 1, so a row
    that masks nothing is pulled up even when another row masks too much.
    Given mask probabilities instead of a 0/1 sample, l(d) is the expected
    count Σ p_i: no Bernoulli noise, so a row inside the band gets no gradient."""
    length = content.sum(1)
    masked = (mask * content).sum(1)
    gap = gamma * length - masked
    outside = (gap.abs() > eps * length).to(gap.dtype)
    return (outside * gap**2).mean()
