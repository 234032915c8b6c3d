"""Shared fixtures: a byte-level BPE trained in the test session on the bundled
paragraphs plus generated sentences, tiny models and tasks, one local Ray.
Nothing is downloaded. Plain helpers live in tests/helpers.py."""

from __future__ import annotations

import pytest

from maskpt.core.tokenizer import TokenizerInfo, train_tokenizer
from tests.helpers import (
    SHARED_DATA,
    bundled_texts,
    make_segments,
    save_tiny_bart,
    synthetic_texts,
    write_tiny_qa,
)


def pytest_collection_modifyitems(config, items):
    """Tests marked `ray_up` go last: the cluster they bring up runs `ray stop`,
    which stops every Ray on the machine, the session's shared one included."""
    items.sort(key=lambda item: item.get_closest_marker("ray_up") is not None)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    texts = bundled_texts() + synthetic_texts(200, seed=99)
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=1200, min_frequency=1)


@pytest.fixture(scope="session")
def tok_info(tokenizer):
    return TokenizerInfo.from_tokenizer(tokenizer)


@pytest.fixture(scope="session")
def many_segments(tokenizer):
    """About 3,000 multi-sentence segments for statistical tests."""
    return make_segments(tokenizer, synthetic_texts(3000, seed=1))


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (set MASKPT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs) shared by all tests that need it."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            address="local",  # its own, whatever `ray start` recorded on this machine
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tokenizer_dir(tokenizer):
    return tokenizer.name_or_path


@pytest.fixture(scope="session")
def tiny_bart(tokenizer, tmp_path_factory):
    return save_tiny_bart(tokenizer, tmp_path_factory.mktemp("tiny_bart"))


@pytest.fixture(scope="session")
def tiny_qa(tmp_path_factory):
    return write_tiny_qa(tmp_path_factory.mktemp("tiny_qa"))
