"""Masks drawn anew every epoch from the stored annotation: different between
epochs, the same for the same (seed, epoch, id) anywhere, the policy's
specification held in every epoch, and one annotated folder serving other
policies and mixtures."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from maskpt.core.tokenizer import TokenizerInfo
from preprocess.index import load_index
from preprocess.inspection import iter_rows
from preprocess.remask import PolicyNotServed, Remasker
from tests.helpers import ROOT, make_shards

DRAWN = ("input_ids", "labels", "masked")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    tmp = tmp_path_factory.mktemp("remask")
    return {
        p: make_shards(tmp / p, tokenizer, policy=p, n_synthetic=40)
        for p in ("orig_v1", "rand_v1", "ssm_v1")
    }


def _rows(folder):
    return [r for _, _, r in iter_rows(folder)]


def _digest(remasker, rows, epoch) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps({k: remasker.draw(r, epoch)[k] for k in DRAWN}).encode())
    return h.hexdigest()


@pytest.mark.parametrize("policy", ["orig_v1", "rand_v1", "ssm_v1"])
def test_each_epoch_draws_anew_and_the_same_key_draws_the_same(policy, folders, tok_info):
    index = load_index(folders[policy])
    rows = _rows(folders[policy])
    rem = Remasker(index, tok_info)
    for r in rows:  # epoch 0 is what preprocessing stored
        assert {k: rem.draw(r, 0)[k] for k in DRAWN} == {k: r[k] for k in DRAWN}
    changed = [any(rem.draw(r, e)["masked"] != r["masked"] for e in range(1, 6)) for r in rows]
    can_change = [policy != "ssm_v1" or len(r["spans"]) > 2 for r in rows]
    assert sum(c for c, ok in zip(changed, can_change) if ok) >= 0.9 * sum(can_change)
    again = Remasker(index, tok_info)
    assert _digest(rem, rows, 3) == _digest(again, rows, 3) != _digest(rem, rows, 4)


SUBPROCESS = """
import hashlib, json, sys
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer
from preprocess.index import load_index
from preprocess.inspection import iter_rows
from preprocess.remask import Remasker
folder, tok = sys.argv[1:3]
rem = Remasker(load_index(folder), TokenizerInfo.from_tokenizer(load_tokenizer(tok)))
h = hashlib.sha256()
for _, _, r in iter_rows(folder):
    h.update(json.dumps({k: rem.draw(r, 3)[k] for k in ("input_ids", "labels", "masked")}).encode())
print(h.hexdigest())
"""


def test_draws_are_the_same_in_another_process_and_any_dataloader_workers(
    folders, tok_info, tokenizer_dir
):
    import torch

    from train.data import PretrainStream, open_source

    folder = folders["orig_v1"]
    out = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(folder), tokenizer_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == _digest(Remasker(load_index(folder), tok_info), _rows(folder), 3)
    src = open_source(str(folder))
    src.remasker = Remasker(src.index, tok_info)
    stream = PretrainStream([src], micro_batch=5, rank=0, world_size=1, seed=1)
    steps = 3 * src.size // 5  # three epochs
    direct = [stream.micro_batch(k) for k in range(steps)]
    it = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2))
    assert [next(it) for _ in range(steps)] == direct
    epochs = [
        [r["masked"] for b in direct for r in b][e * src.size : (e + 1) * src.size]
        for e in range(2)
    ]
    assert epochs[0] != epochs[1]


def test_one_ssm_folder_serves_orig_rand_and_a_mixture(folders, tok_info):
    index = load_index(folders["ssm_v1"])
    assert set(index.annotations) == {"words", "sentences", "entities"}
    rows = _rows(folders["ssm_v1"])
    orig = Remasker(index, tok_info, "orig_v1")
    rand = Remasker(index, tok_info, "rand_v1")
    assert all(orig.draw(r, 1)["labels"] == r["original_ids"] for r in rows)  # full target
    for r in rows:
        n = len(r["original_ids"]) - 2
        assert sum(rand.draw(r, 2)["masked"]) == max(1, math.floor(0.15 * n + 0.5))
    mix = Remasker(index, tok_info, {"ssm_v1": 0.5, "orig_v1": 0.5})
    picks = [mix.policy_for(r["id"], e).name == "ssm_v1" for e in range(20) for r in rows]
    share, se = np.mean(picks), math.sqrt(0.25 / len(picks))
    assert abs(share - 0.5) < 2 * se, (share, se)
    drawn = mix.draw(rows[0], 7)
    name = mix.policy_for(rows[0]["id"], 7).name
    solo = (Remasker(index, tok_info, name)).draw(rows[0], 7)
    assert drawn["input_ids"] == solo["input_ids"]  # the mixture draws exactly as its member
    with pytest.raises(PolicyNotServed, match="sup_v1 needs ranked_spans"):
        Remasker(index, tok_info, "sup_v1")
    with pytest.raises(PolicyNotServed, match="ssm_v1 needs entities"):
        Remasker(load_index(folders["rand_v1"]), tok_info, "ssm_v1")


def test_inspect_shows_any_epoch(folders, capsys):
    from maskpt.cli import main

    folder = str(folders["orig_v1"])
    assert main(["inspect", folder, "--show", "2", "--json"]) == 0
    stored = capsys.readouterr().out
    assert main(["inspect", folder, "--show", "2", "--json", "--epoch", "0"]) == 0
    assert capsys.readouterr().out == stored
    assert main(["inspect", folder, "--show", "2", "--json", "--epoch", "5"]) == 0
    assert capsys.readouterr().out != stored
    assert (
        main(
            [
                "inspect",
                str(folders["ssm_v1"]),
                "--show",
                "1",
                "--epoch",
                "1",
                "--policy",
                "rand_v1",
            ]
        )
        == 0
    )
    assert "rand_v1" in capsys.readouterr().out


def test_inspect_refuses_epoch_without_show(folders, capsys):
    # the summary holds the stored epoch-0 masks: --epoch alone used to print it silently
    from maskpt.cli import main

    for extra in (["--epoch", "3"], ["--policy", "rand_v1"]):
        with pytest.raises(SystemExit) as exc:
            main(["inspect", str(folders["orig_v1"]), *extra])
        assert exc.value.code == 2
        assert "maskpt analyze FOLDER --epoch E" in capsys.readouterr().err


@pytest.fixture(scope="module")
def wiki(shared_data, tmp_path_factory):
    """Segments of the real Wikipedia sample with a tokenizer trained on it."""
    from maskpt.core.records import Document
    from maskpt.core.tokenizer import train_tokenizer
    from preprocess.segment import segment_document
    from preprocess.wikipedia import read_wikipedia_dump

    dump = shared_data / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    docs = [d for d in read_wikipedia_dump(dump) if isinstance(d, Document)]
    tok = train_tokenizer([d.text for d in docs], tmp_path_factory.mktemp("wtok"), vocab_size=8000)
    segs = [
        s
        for d in docs[:40]
        for s in segment_document(tok, d.id, d.text, 128)
        if hasattr(s, "input_ids")
    ]
    return segs, TokenizerInfo.from_tokenizer(tok)


def test_orig_masks_27_to_28_percent_of_word_starts_in_every_epoch(wiki):
    import policies
    from policies.base import base_annotation

    segs, info = wiki
    pol = policies.create("orig_v1", info)
    anns = [base_annotation(s) for s in segs]
    for epoch in range(3):
        starts = masked = 0
        for s, a in zip(segs, anns):
            ws, m = np.array(a.word_starts), np.array(pol.draw(s, a, 0, epoch).mask)
            starts, masked = starts + ws.sum(), masked + (ws & m).sum()
        assert 0.27 <= masked / starts <= 0.28, (epoch, masked / starts)


def test_rand_masks_exactly_15_percent_in_every_epoch(wiki):
    import policies
    from policies.base import base_annotation

    segs, info = wiki
    pol = policies.create("rand_v1", info)
    for epoch in range(3):
        for s in segs[:500]:
            n = s.num_content_tokens
            assert pol.draw(s, base_annotation(s), 0, epoch).num_masked == max(
                1, math.floor(0.15 * n + 0.5)
            )


def test_ssm_masks_one_whole_entity_chosen_uniformly(wiki):
    from scipy import stats

    import policies

    segs, info = wiki
    pol = policies.create("ssm_v1", info)
    anns = [a for a in pol.annotate(segs[:300]) if not isinstance(a, str) and hasattr(a, "spans")]
    pairs = [(s, a) for s, a in zip(segs[:300], pol.annotate(segs[:300])) if hasattr(a, "spans")]
    assert len(anns) == len(pairs) > 100
    chi, dof, epochs = 0.0, 0, 60
    for s, a in pairs:
        counts = np.zeros(len(a.spans))
        for e in range(epochs):
            ex = pol.draw(s, a, 0, e)
            idx = [i for i, m in enumerate(ex.mask) if m]
            span = (idx[0], idx[-1] + 1)
            assert idx == list(range(*span)) and span in a.spans  # exactly one whole entity
            counts[[k for k, sp in enumerate(a.spans) if sp == span]] += 1 / a.spans.count(span)
        if len(a.spans) > 1:
            expected = epochs / len(a.spans)
            chi += ((counts - expected) ** 2 / expected).sum()
            dof += len(a.spans) - 1
    assert stats.chi2.sf(chi, dof) > 0.001, (chi, dof)


def test_a_policy_mixture_written_without_spaces_is_refused_with_the_fix():
    """`data.policy={ssm_v1:0.5,rand_v1:0.5}` (YAML: keys with no values) was a TypeError."""
    from pathlib import Path

    from maskpt.core.config import load_config
    from maskpt.core.errors import UserError
    from preprocess.remask import mixture_of
    from train.pretrain_config import PretrainConfig

    tiny = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "tiny_cpu.yaml"

    over = ["data.shards=[x]", "model.tokenizer=t", "data.policy={ssm_v1:0.5,rand_v1:0.5}"]
    with pytest.raises(UserError, match="write a space after each colon"):
        load_config(PretrainConfig, tiny, over)
    with pytest.raises(UserError, match="weights > 0"):
        mixture_of({"ssm_v1": "half"})
