"""Node types of the shipped cluster configs and whether every shipped recipe's Ray work fits them
(`ecr_ray.cluster`): a recipe asking for a resource shape no node type offers fails here, not on a cluster that waits
forever for a node it cannot have. Offline and fast: no Ray cluster (the autoscaling rehearsal shows the check
failing a real job: tests/cluster/test_autoscaling.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from ecr_ray import cluster
from ecr_ray.config import PROJECT_ROOT, RECIPES_DIR, Config, ConfigError, Resources, load_config
from ecr_ray.jobs.cli import job_names
from tests.autoscaling_cluster import autoscaling_config, resource_fields, scaled_node_types, scaled_requests

CONFIGS = {
    "cluster/aws.yaml": None,  # every job
    "cluster/gcp.yaml": None,
    "cluster/kuberay/raycluster.yaml": None,
    "cluster/kuberay/rayjob.yaml": None,
    "cluster/kuberay/rayservice.yaml": ("serve",),  # a serving cluster
}
RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_shipped_recipe_fits_the_node_types_of_every_shipped_config(recipe, config):
    types = cluster.load_node_types(PROJECT_ROOT / config)
    jobs = CONFIGS[config] or tuple(cluster.JOB_RESOURCES)
    reqs = cluster.requests(load_config(recipe), jobs)
    assert reqs and cluster.problems(reqs, types, config) == []


def test_node_types_are_read_as_their_autoscalers_read_them():
    aws = {t.name: t for t in cluster.load_node_types(PROJECT_ROOT / "cluster/aws.yaml")}
    assert aws["head.cpu"].resources["CPU"] == 0 and aws["head.cpu"].max_workers == 1
    assert aws["worker.gpu4"].resources == {"CPU": 48, "GPU": 4, "accelerator_type:A10G": 1}
    assert aws["worker.gpu4"].max_workers == 2
    kuberay = {t.name: t for t in cluster.load_node_types(PROJECT_ROOT / "cluster/kuberay/raycluster.yaml")}
    # KubeRay: CPUs and GPUs from the container limits, memory too (Ray's own translation of the RayCluster spec)
    assert kuberay["gpu1"].resources["CPU"] == 7 and kuberay["gpu1"].resources["GPU"] == 1
    assert kuberay["gpu1"].max_workers == 4 and kuberay["headgroup"].resources["CPU"] == 0


def test_a_request_no_node_type_holds_names_the_job_field_request_and_node_types():
    cfg = load_config("paper", {"generator.train_resources": {"workers": 4, "cpus": 10, "gpus": 16}})
    types = cluster.load_node_types(PROJECT_ROOT / "cluster/aws.yaml")
    [problem] = cluster.problems(cluster.requests(cfg, ["train_generator"]), types, "cluster/aws.yaml")
    for part in ("train_generator", "generator.train_resources", "GPU: 16", "cluster/aws.yaml", "worker.gpu8"):
        assert part in problem, problem


def test_more_pieces_than_the_node_types_can_hold_at_their_max_is_refused():
    types = [cluster.NodeType("head", {"CPU": 0}, 1), cluster.NodeType("gpu1", {"CPU": 8, "GPU": 1}, 2)]
    ok = cluster.Request("train_x", "x.train_resources", {"CPU": 4, "GPU": 1}, 2)
    too_many = cluster.Request("train_x", "x.train_resources", {"CPU": 4, "GPU": 1}, 3)
    spread = cluster.Request("serve", "serve.deployments.ECRIngress", {"CPU": 0.5}, 3, per_node=1)
    assert cluster.problems([ok], types, "here") == []
    [p1] = cluster.problems([too_many], types, "here")
    [p2] = cluster.problems([spread], types, "here")
    assert "hold at most 2" in p1 and "at most 1 per node" in p2


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
@pytest.mark.parametrize("config", CONFIGS)
def test_no_cpu_only_serve_replica_of_the_paper_recipe_fits_a_gpu_node_type(config, engine):
    """A CPU-only replica on a GPU node keeps that node up after the GPU replicas scaled down (the autoscaling
    rehearsal saw it: an ingress replica held a worker.gpu1 for good). The paper recipe's CPU-only deployments ask
    for `cpu_node`, which only the CPU node types carry; the GPU deployments fit the GPU types."""
    types = [t for t in cluster.load_node_types(PROJECT_ROOT / config) if t.max_workers]
    reqs = cluster.requests(load_config("paper", {"generator.engine": engine}), ["serve"])
    cpu_only = [r for r in reqs if not r.bundle.get("GPU")]
    assert {r.field.rsplit(".", 1)[-1] for r in cpu_only} >= {"ECRIngress", "EmotionDetector", "Recommender"}
    for r in reqs:
        hosts = [t.name for t in types if t.holds(r.bundle)]
        assert hosts, (r.field, config)
        on_gpu = [t.name for t in types if t.holds(r.bundle) and t.resources.get("GPU")]
        assert bool(on_gpu) == bool(r.bundle.get("GPU")), (r.field, r.bundle, on_gpu, config)


def test_a_resource_no_node_type_carries_is_named():
    types = [cluster.NodeType("head", {"CPU": 0}, 1), cluster.NodeType("gpu1", {"CPU": 8, "GPU": 1}, 2)]
    req = cluster.Request("serve", "serve.deployments.ECRIngress", {"CPU": 0.5, "cpu_node": 0.001}, 2, per_node=1)
    [problem] = cluster.problems([req], types, "one GPU machine")
    assert "no node type of one GPU machine carries `cpu_node`" in problem, problem


def test_check_reads_the_recipe_node_types_then_the_bootstrap_config(tmp_path, monkeypatch):
    types = {"head": {"resources": {"CPU": 0}}, "w": {"resources": {"CPU": 4}, "max_workers": 2}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"available_node_types": types, "head_node_type": "head"}))
    cfg = load_config("paper", {"node_types": str(path)})
    with pytest.raises(ConfigError, match="train_emotion: emotion.train_resources asks"):
        cluster.check(cfg, ["train_emotion"])
    cluster.check(cfg, ["data", "evaluate_recommender"])  # no Ray work: nothing to place
    monkeypatch.setattr(cluster, "BOOTSTRAP_CONFIG", path)  # a `ray up` head
    with pytest.raises(ConfigError, match=str(path)):
        cluster.check(load_config("paper"), ["train_recommender"])
    monkeypatch.setenv("ECR_NODE_TYPES", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml not found"):
        cluster.check(load_config("paper"), ["train_recommender"])


def test_every_job_and_every_resources_field_is_mapped():
    """A new job or a new `*_resources` field must say where its Ray work goes (JOB_RESOURCES)."""
    assert set(job_names()) - {"demo", "pipeline", "fetch_models"} <= set(cluster.JOB_RESOURCES)
    used = {f for fields in cluster.JOB_RESOURCES.values() for f in fields}
    for section in dataclasses.fields(Config):
        value = getattr(Config(), section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                if isinstance(getattr(value, f.name), Resources):
                    assert f"{section.name}.{f.name}" in used, f"{section.name}.{f.name} is in no JOB_RESOURCES entry"


def test_force_cpu_sets_every_device_and_refuses_contradictions():
    cfg = load_config("paper", {"force_cpu": True})
    assert {getattr(cfg, s).device for s in Config.DEVICE_SECTIONS} == {"cpu"}
    assert cfg.generator.train_resources.gpus == 1  # the requests stay as written
    with pytest.raises(ConfigError, match="recommender.device: cuda contradicts force_cpu"):
        load_config("paper", {"force_cpu": True, "recommender.device": "cuda"})
    with pytest.raises(ConfigError, match="generator.engine: vllm"):
        load_config("paper", {"force_cpu": True, "generator.engine": "vllm"})


@pytest.mark.parametrize("source", ["cluster/aws.yaml", "cluster/kuberay/raycluster.yaml"])
def test_the_autoscaling_rehearsal_keeps_the_paper_shape_placeable(source, tmp_path):
    """The rehearsal scales node types and the paper recipe's requests by the same factor: what fits at full size
    fits there (tests/autoscaling_cluster.py, tests/cluster/test_autoscaling.py)."""
    types = scaled_node_types(PROJECT_ROOT / source)
    assert {k for t in types.values() for k in t["resources"]} >= {"CPU", "GPU"}
    path = tmp_path / "autoscaling.yaml"
    path.write_text(yaml.safe_dump(autoscaling_config(types, "127.0.0.1:1", tmp_path, 30)))
    recipe = tmp_path / "shape.yaml"
    shape = scaled_requests(yaml.safe_load((RECIPES_DIR / "paper.yaml").read_text()), resource_fields())
    recipe.write_text(yaml.safe_dump({"extends": "demo", "force_cpu": True, "node_types": str(path), **shape}))
    cfg = load_config(str(recipe))
    assert cfg.generator.train_resources.gpus == 1 and cfg.generator.train_resources.workers == 4
    cluster.check(cfg, tuple(cluster.JOB_RESOURCES))
