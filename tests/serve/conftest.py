"""Fixtures for the Serve tests: demo-recipe artifacts built once (tiny settings), one real Ray Serve instance on a
free 127.0.0.1 port for the whole session (with the header guard in its proxy), and its base URL.

The artifacts go to runs/test-serve (git-ignored) and a stage is rerun only when its artifact is missing or the
tiny settings changed (stamp file), so only the first session pays for training (~4 min on 2 cores). Delete the
folder to rebuild; set ECR_SERVE_TEST_RUN_DIR to use an existing demo run directory instead (e.g. runs/demo).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ecr_ray.config import PROJECT_ROOT, load_config
from ecr_ray.data.tables import RunDataMismatch, check_run_data

# Tiny settings: the point is a real, loadable artifact of every stage, not a good model.
TINY = {
    "data.max_conversations": 40,
    "emotion.epochs": 1,
    "recommender.epochs": 1,
    "generator.max_steps": 1,
    "generator.batch_size": 1,
    "generator.max_length": 128,
    "conversation.max_steps": 2,  # its u_r may then be the template: serve tests accept both sources
    "conversation.batch_size": 1,
    "serve.max_new_tokens": 12,
}
# Short deadlines so that the hostile-client tests finish quickly (not part of the artifacts' stamp).
LIMITS = {"serve.header_timeout_s": 3.0, "serve.body_timeout_s": 3.0}
# (job module, its own flags, artifact that proves it ran) in pipeline order (jobs/pipeline.py STAGES); each runs
# as `python -m ecr_ray.jobs.<name>`.
STAGES = [
    ("data", [], "tables/manifest.json"),
    ("train_emotion", [], "emotions/classifier/model/meta.json"),
    ("build_reviews", ["--engine", "local"], "reviews/movie_knowledge.parquet"),
    ("train_recommender", [], "recommender/full/model.pt"),
    ("train_conversation", [], "conversation/manifest.json"),
    ("train_generator", [], "generator/manifest.json"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(run_dir: Path) -> list[str]:
    return ["--recipe", "demo", "--run-dir", str(run_dir)] + [f"--{k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="session")
def serve_run_dir() -> Path:
    """A demo run directory with tables, emotion classifier, review DB, recommender and generator adapter."""
    given = os.environ.get("ECR_SERVE_TEST_RUN_DIR")
    if given:
        return Path(given).resolve()
    run_dir = PROJECT_ROOT / "runs" / "test-serve"
    stamp_path = run_dir / "serve-test-stamp.json"
    stamp = {"tiny": TINY, "stages": [job for job, _, _ in STAGES], "layout": 3}  # layout: bump when artifacts change
    fresh = stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp
    try:  # artifacts built from other sample data are rebuilt (serving would refuse them)
        check_run_data(load_config("demo", {"run_dir": str(run_dir)}))
    except RunDataMismatch:
        fresh = False
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("ECR_RUN_DIR", None)
    for job, flags, artifact in STAGES:
        if fresh and (run_dir / artifact).exists():
            continue
        fresh = False  # a rebuilt stage invalidates the ones after it
        t0 = time.time()
        p = subprocess.run(
            [sys.executable, "-m", f"ecr_ray.jobs.{job}", *_overrides(run_dir), *flags],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if p.returncode != 0 or not (run_dir / artifact).exists():
            pytest.fail(
                f"ecr_ray.jobs.{job} failed (rc {p.returncode}) after {time.time() - t0:.0f}s:\n{p.stderr[-3000:]}"
            )
    stamp_path.write_text(json.dumps(stamp))
    return run_dir


@pytest.fixture(scope="session")
def serve_cfg(serve_run_dir):
    return load_config("demo", {"run_dir": str(serve_run_dir), **TINY, **LIMITS})


@pytest.fixture(scope="session")
def serve_url(serve_cfg):
    """Base URL (no trailing slash) of the ECR app on a real Ray Serve HTTP proxy bound to 127.0.0.1:<free>."""
    import ray
    from ray import serve

    from ecr_ray.serve.app import build_app
    from ecr_ray.serve.guard import proxy_env

    os.environ.pop(serve_cfg.serve.api_token_env, None)  # this instance runs without auth; test_auth adds one
    guard_env = proxy_env(serve_cfg.serve)
    saved = {k: os.environ.get(k) for k in guard_env}
    os.environ.update(guard_env)  # the header guard in Serve's proxy, as `ecr-ray serve` does
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(serve_cfg), name="ecr", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:  # the proxy may 404 briefly after the app is RUNNING
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        if ray.is_initialized():  # a later test module may already have ended this Ray instance
            serve.shutdown()
            ray.shutdown()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


TOKENS = ("token-a-0123456789", "token-b-9876543210")
"""The bearer tokens of the secured ingress: two clients."""


@pytest.fixture(scope="session")
def secure_url(serve_url, serve_cfg):
    """A second ECR ingress, under /secure, in front of the same model deployments, with two bearer tokens (two
    clients) in its replica's environment."""
    import ray
    from ray import serve

    from ecr_ray.serve.app import ECRIngress

    handles = [serve.get_deployment_handle(n, app_name="ecr") for n in ("EmotionDetector", "Recommender", "Generator")]
    env = {serve_cfg.serve.api_token_env: ",".join(TOKENS)}
    secure = ECRIngress.options(ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}}).bind(
        serve_cfg, *handles
    )
    serve.run(secure, name="ecr-secure", route_prefix="/secure")
    yield f"{serve_url}/secure"
    if ray.is_initialized():
        serve.delete("ecr-secure")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
