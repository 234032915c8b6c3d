from dataclasses import dataclass

import pytest

import policies
from maskpt.core.config import ConfigError
from policies.base import Policy
from policies.registry import _REGISTRY, register


def test_builtins_registered():
    assert {"orig_v1", "rand_v1", "ssm_v1"} <= set(policies.names())


def test_duplicate_name_refused():
    @dataclass(frozen=True)
    class C:
        pass

    with pytest.raises(ValueError, match="already registered"):

        @register("rand_v1")
        class Again(Policy):
            config_cls = C


def test_unversioned_name_refused():
    with pytest.raises(ValueError, match="versioned"):
        register("rand")


def test_register_and_create_custom(tok_info):
    @dataclass(frozen=True)
    class C:
        k: int = 1

    @register("custom_test_v1")
    class Custom(Policy):
        config_cls = C

    try:
        p = policies.create("custom_test_v1", tok_info, overrides=["k=3"])
        assert p.config.k == 3 and p.name == "custom_test_v1"
    finally:
        _REGISTRY.pop("custom_test_v1")


def test_unknown_policy_lists_names(tok_info):
    with pytest.raises(KeyError, match="rand_v1"):
        policies.create("nope_v1", tok_info)


def test_config_validation(tok_info):
    with pytest.raises(ConfigError, match="mask_ratio"):
        policies.create("rand_v1", tok_info, {"mask_ratio": 1.5})
    with pytest.raises(ConfigError, match="unknown key"):
        policies.create("orig_v1", tok_info, overrides=["mask_rate=0.2"])
    with pytest.raises(ConfigError, match="must be float"):
        policies.create("orig_v1", tok_info, overrides=["mask_ratio=abc"])
