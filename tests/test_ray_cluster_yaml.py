from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_config_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` does; raises on a schema error
    types = config["available_node_types"]
    assert {"head", "cpu_worker", "gpu_worker"} <= set(types)
    assert config["head_node_type"] == "head"
    assert any("pip install -e ~/maskpt" in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/maskpt"] == "."


def test_validation_catches_a_broken_config():
    import jsonschema
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["available_node_types"]["cpu_worker"]["max_wrokers"] = 3  # a typo
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))
