"""Human-readable rendering of masked segments: masked parts highlighted.

Used by `maskpt mask` and `maskpt inspect --show`.
Runs are decoded separately and styled with rich markup, so the same text is
readable with or without colour: masks always show as `<mask>`.
"""

from __future__ import annotations

from rich.markup import escape

from maskpt.core.records import MaskedSegment

MASK_STYLE = "bold white on red"
SPAN_STYLE = "bold yellow"
RANDOM_STYLE = "bold magenta"


def _runs(ids, flags):
    """Group ids into (flag, [ids]) runs."""
    out: list[tuple[bool, list[int]]] = []
    for t, f in zip(ids, flags, strict=True):
        if out and out[-1][0] == f:
            out[-1][1].append(t)
        else:
            out.append((f, [t]))
    return out


def _decode(tokenizer, ids) -> str:
    return escape(
        tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    )


def render_source(tokenizer, ex: MaskedSegment) -> str:
    mask_id = tokenizer.mask_token_id
    parts = []
    for is_mask, ids in _runs(ex.source_ids, [t == mask_id for t in ex.source_ids]):
        text = _decode(tokenizer, ids)
        parts.append(f"[{MASK_STYLE}]{text}[/]" if is_mask else text)
    return "".join(parts)


def render_target(tokenizer, ex: MaskedSegment) -> str:
    if ex.format == "full":  # highlight the tokens that were masked in the source
        flags = list(ex.mask)
        return "".join(
            f"[{SPAN_STYLE} underline]{_decode(tokenizer, ids)}[/]"
            if m
            else _decode(tokenizer, ids)
            for m, ids in _runs(ex.target_ids, flags)
        )
    mask_id = tokenizer.mask_token_id
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, mask_id}
    parts = []
    for is_sep, ids in _runs(ex.target_ids, [t in special for t in ex.target_ids]):
        text = _decode(tokenizer, ids)
        parts.append(f"[dim]{text}[/]" if is_sep else f"[{SPAN_STYLE}]{text}[/]")
    return "".join(parts)


def to_json(tokenizer, ex: MaskedSegment) -> dict:
    """The `--json` record of one masked segment: the shard row's fields
    (`input_ids` = the masked model input, `labels`, `original_ids`, `masked`)
    plus policy, target format and the decoded source and target."""

    def dec(ids):
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    return {
        "id": ex.id,
        "doc_id": ex.doc_id,
        "policy": ex.policy,
        "format": ex.format,
        "input_ids": list(ex.source_ids),
        "labels": list(ex.target_ids),
        "original_ids": list(ex.input_ids),
        "masked": [bool(m) for m in ex.mask],
        "source": dec(ex.source_ids),
        "target": dec(ex.target_ids),
    }


def print_example(console, tokenizer, ex: MaskedSegment) -> None:
    console.print(
        f"[bold cyan]{escape(ex.id)}[/]  [dim]{ex.policy} · {ex.num_masked}/"
        f"{ex.segment.num_content_tokens} tokens masked · target {ex.format}[/]"
    )
    console.print(f"  [bold]source[/] {render_source(tokenizer, ex)}", soft_wrap=True)
    console.print(f"  [bold]target[/] {render_target(tokenizer, ex)}", soft_wrap=True)
    console.print()


def print_counts(console, counts, title: str) -> None:
    """The one-paragraph summary of a `preprocess.counts.Counts`."""
    d = counts.as_dict()
    console.print(
        f"[bold]{escape(title)}[/]: {d['documents_read']} documents read, "
        f"{d['documents_written']} written; {d['segments_written']}/{d['segments']} segments "
        f"written, {d['tokens_written']} tokens; mask ratio {d['mask_ratio']:.3f}"
    )
    print_skips(console, d)
    for s in counts.examples[:5]:
        if s.detail:
            console.print(f"  [dim]{escape(s.reason)}: {escape(s.detail)}[/]")


def print_skips(console, counts: dict) -> None:
    """The skipped-by-reason lines of a counts dict (`Counts.as_dict()` or index.json)."""
    for kind in ("skipped_documents", "skipped_segments"):
        if counts[kind]:
            items = ", ".join(f"{k}: {v}" for k, v in sorted(counts[kind].items()))
            console.print(f"  {kind.replace('_', ' ')}: {escape(items)}", emoji=False)
