"""Shared fixtures: the packaged sample dataset, tiny configs, and the real data when `../shared/data` exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecr_ray.config import PROJECT_ROOT, load_config

REAL_DATA = Path(os.environ.get("ECR_REAL_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch):
    monkeypatch.delenv("ECR_DATA_DIR", raising=False)
    monkeypatch.delenv("ECR_RUN_DIR", raising=False)


def item_id(kg, name: str) -> int:
    """The entity id of the KG movie shown as `name` (the sample KG's ids are those of its slice: look them up)."""
    return next(i for i in kg.item_ids.tolist() if kg.names[i] == name)


@pytest.fixture
def demo_cfg(tmp_path):
    """The demo recipe (packaged sample data) writing into a temporary run directory."""
    return load_config("demo", {"run_dir": str(tmp_path / "run")})


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (REAL_DATA / "redial" / "test_data.jsonl").exists():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


def _shutdown_ray() -> None:
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def _fresh_ray_per_module(request):
    """Each test module starts without a Ray instance: jobs run in-process may leave one initialised, and the next
    module's `ray.init(...)` with its own arguments would fail. tests/serve shares one session-scoped Serve app
    across its modules, so Ray is left alone there (its fixture shuts it down at the end of the session)."""
    shared = "serve" in Path(str(request.path)).relative_to(Path(__file__).parent).parts[:1]
    if not shared:
        _shutdown_ray()
    yield
    if not shared:
        _shutdown_ray()


@pytest.fixture(scope="module")
def endpoint():
    """The project's own OpenAI-compatible base-model server (ecr_ray/llm_server.py) on 127.0.0.1: its base URL."""
    import ray
    from ray import serve

    from ecr_ray.llm_server import start_local

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        url, _ = start_local(load_config("demo"))
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()
