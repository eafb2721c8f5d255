"""What a user gets from `pip install ecr-ray` outside a checkout: the recipes, the web chat and the sample data
ship inside the package, and every command is an `ecr_ray.jobs` module."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from ecr_ray.config import PROJECT_ROOT


def test_the_wheel_carries_recipes_static_files_and_sample_data(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("ecr_ray-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "ecr_ray/recipes/demo.yaml",
        "ecr_ray/recipes/cpu.yaml",
        "ecr_ray/recipes/paper.yaml",
        "ecr_ray/serve/static/index.html",
        "ecr_ray/jobs/pipeline.py",
        "ecr_ray/jobs/fetch_models.py",
        "ecr_ray/data/sample/redial/test_data.jsonl",
        "ecr_ray/data/sample/ATTRIBUTION.md",  # the real data's slice ships with its sources and licences
        "ecr_ray/data/sample/licences/MIT-iEvaLM-CRS.txt",
        "ecr_ray/model_configs/meta-llama/Llama-2-7b-chat-hf/config.json",  # what `ecr-ray plan` builds models from
        "ecr_ray/jobs/plan.py",
    ):
        assert path in names, path
    assert not any(n.startswith(("jobs/", "serve/", "recipes/", "tests/", "scripts/")) for n in names)
    sample = [i for i in zipfile.ZipFile(wheel).infolist() if i.filename.startswith("ecr_ray/data/sample/")]
    assert not any(i.filename.endswith(".py") for i in sample)  # data files; their generator stays in scripts/
    assert sum(i.file_size for i in sample) < 4 * 1024 * 1024  # a few MB at most


def test_recipes_load_from_any_working_directory(tmp_path):
    code = "from ecr_ray.config import load_config; print(load_config('paper').generator.base_model)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "meta-llama/Llama-2-7b-chat-hf", done.stderr[-2000:]


def test_every_console_script_resolves_to_a_callable():
    """`[project.scripts]` names modules by path: a module moved without its entry point breaks `ecr-ray` (and
    `make demo`) while every import in the tests still works."""
    import importlib
    import tomllib

    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name
