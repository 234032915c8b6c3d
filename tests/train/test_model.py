"""Model config validation and the Hugging Face export."""

import pytest
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

from maskpt.core.errors import UserError
from train.model import ModelConfig, export_pretrained, load_pretrained


def test_model_config_needs_a_model_and_a_tokenizer():
    with pytest.raises(ValueError, match="name_or_path"):
        ModelConfig(name_or_path="", config={})
    with pytest.raises(ValueError, match="model.tokenizer"):
        ModelConfig(name_or_path="", config={"d_model": 8})
    assert ModelConfig(name_or_path="", config={"d_model": 8}, tokenizer="t").tokenizer_name == "t"


def test_export_sets_model_max_length_to_the_positions(tmp_path, tokenizer):
    cfg = BartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        max_position_embeddings=48,
    )
    before = tokenizer.model_max_length
    export_pretrained(BartForConditionalGeneration(cfg), tokenizer, tmp_path / "hf")
    assert tokenizer.model_max_length == before  # the caller's tokenizer is left as it was
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.model_max_length == 48
    ids = tok("word " * 200, truncation=True)["input_ids"]
    assert len(ids) == 48
    model = load_pretrained(str(tmp_path / "hf"))
    out = model.generate(
        **tok(["word " * 200], truncation=True, return_tensors="pt"), max_new_tokens=3
    )
    assert out.shape[0] == 1


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_pretrained(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="could not load model"):
        load_pretrained(str(tmp_path / "empty"))
