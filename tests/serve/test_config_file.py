"""The written Serve config: sized to fit the machine of its recipe, refused with a clear message when it cannot fit,
and — as docs/serve.md says — `serve run` of the demo recipe's file serves both applications on a 2-CPU Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from ecr_ray.config import PROJECT_ROOT, ConfigError, load_config
from ecr_ray.serve.deploy import APP_NAME, LLM_NAME, demand, shortfall, write_config
from tests.ray_cluster import LocalCluster, free_port


@pytest.mark.parametrize("recipe", ["demo", "cpu"])
def test_both_applications_fit_two_cpus_at_their_largest_scale(recipe):
    need = demand(load_config(recipe), [APP_NAME, LLM_NAME])
    assert set(need) == {"ECRIngress", "EmotionDetector", "Recommender", "Generator", "ChatModel"}
    assert shortfall(need, cpus=2, gpus=0) is None, need


def test_a_config_that_cannot_fit_names_the_deployments_and_the_shortfall():
    cfg = load_config("demo", {"serve.deployments": {"ChatModel": {"ray_actor_options": {"num_cpus": 1}}}})
    msg = shortfall(demand(cfg, [APP_NAME, LLM_NAME]), cpus=2, gpus=0)
    assert msg and "need 2.35 CPUs" in msg and "Recommender 2×0.25 CPU" in msg and "ChatModel 1×1 CPU" in msg
    assert "short by 0.35 CPU" in msg and "serve.deployments" in msg


def test_an_ingress_that_caps_load_below_an_autoscaled_maximum_is_refused():
    """The paper recipe's 2 ingress replicas at Serve's default 5 ongoing requests held its Generator at 3 of 4
    replicas under any load (the autoscaling rehearsal): such a config is refused, naming the fix."""
    two = {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.1}}
    auto = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 4}}
    with pytest.raises(ConfigError) as e:
        load_config("demo", {"serve.deployments": {"ECRIngress": two, "Generator": auto}})
    msg = str(e.value)
    assert "serve.deployments.ECRIngress: holds at most 10 requests" in msg and "Recommender" in msg, msg
    assert "max_ongoing_requests to at least 16" in msg, msg
    # Enough room: the same ingress with max_ongoing_requests 16 (2 × 16 ≥ Generator 4 × 4, Recommender 2 × 16).
    cfg = load_config(
        "demo", {"serve.deployments": {"ECRIngress": {**two, "max_ongoing_requests": 16}, "Generator": auto}}
    )
    assert cfg.serve.deployments["Generator"] == auto


@pytest.fixture(scope="module")
def two_cpus():
    """A local Ray instance of 2 CPUs (`ray start --head --num-cpus=2`): the machine the demo recipe is for."""
    cluster = LocalCluster()
    cluster.start_head(num_cpus=2)
    yield cluster
    cluster.stop()


def test_ecr_ray_serve_refuses_a_config_that_cannot_fit(two_cpus, serve_run_dir):
    too_big = "{ChatModel: {ray_actor_options: {num_cpus: 1}}}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecr_ray.jobs.serve",
            "--recipe",
            "demo",
            "--run-dir",
            str(serve_run_dir),
            "--llm",
            "--address",
            f"127.0.0.1:{two_cpus.gcs}",
            "--serve.deployments",
            too_big,
        ],
        cwd=PROJECT_ROOT,
        env=two_cpus.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "need 2.35 CPUs" in done.stderr and "ChatModel 1×1 CPU" in done.stderr and "short by 0.35 CPU" in done.stderr


def test_serve_run_of_the_written_demo_config_serves_both_applications(two_cpus, serve_run_dir, tmp_path):
    port = free_port()
    path = tmp_path / "serve.yaml"
    write_config(load_config("demo", {"run_dir": str(serve_run_dir), "serve.port": port}), "demo", path)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return requests.get(f"{url}/healthz", timeout=5).ok and requests.get(f"{url}/llm/v1/models", timeout=5).ok

    with two_cpus.serve_run(path, ready):
        models = requests.get(f"{url}/llm/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["smollm2-135m-instruct"]
        r = requests.post(
            f"{url}/v1/recommend",
            timeout=120,
            json={"dialogue": [{"role": "user", "text": "I loved Toy Story, anything like it?"}], "generate": False},
        )
        assert r.status_code == 200 and r.json()["items"], r.text
