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
    assert any('pip install -e ~/maskpt"[s3]"' in c for c in config["setup_commands"])
    # the dashboard (and job API) stays on the head's loopback: `ray dashboard` forwards it
    starts = [c for k in ("head", "worker") for c in config[f"{k}_start_ray_commands"]]
    starts = [c for c in starts if "ray start" in c]
    assert len(starts) == 2 and "--dashboard-host=127.0.0.1" in starts[0]
    # token authentication on every node, with the token every node is given
    assert all(c.startswith("RAY_AUTH_MODE=token ray start") for c in starts)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert config["file_mounts"]["~/maskpt"] == "."
    # every node runs Ray at the version this project installs (the client's)
    import ray

    images = [
        config["docker"]["image"],
        config["docker"]["worker_image"],
        types["gpu_worker"]["docker"]["worker_image"],
    ]
    assert all(i.split(":")[1].startswith(ray.__version__ + "-py311") for i in images)
    assert any(f"ray[data]=={ray.__version__}" in c for c in config["setup_commands"])
    text = (ROOT / "ray_cluster.yaml").read_text() + (ROOT / "README.md").read_text()
    assert "ray submit ray_cluster.yaml" not in text and "ray exec ray_cluster.yaml" in text


def test_validation_catches_a_broken_config():
    import jsonschema
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["available_node_types"]["cpu_worker"]["max_wrokers"] = 3  # a typo
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_local_variant_differs_only_in_provider_and_login():
    """ray_local.yaml (Ray's `local` provider, brought up for real in
    tests/test_ray_local_cluster.py) runs ray_cluster.yaml's own setup and
    start commands and syncs the project the same way."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cloud = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    local = yaml.safe_load((ROOT / "ray_local.yaml").read_text())
    validate_config(prepare_config(local))
    assert local["provider"]["type"] == "local" and "docker" not in local
    for key in (
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
        "file_mounts",
        "rsync_exclude",
    ):
        assert local[key] == cloud[key], key
