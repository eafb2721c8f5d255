"""The checkout's top-level jobs/ and serve/ (`ecr-ray specs`): up to date with the recipes, submittable as Ray's job
submission takes them, and what the KubeRay RayJob and RayService carry."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import yaml
from ray.job_submission import JobSubmissionClient
from ray.runtime_env import RuntimeEnv

from ecr_ray.config import PROJECT_ROOT, load_config
from ecr_ray.jobs.cli import job_names
from ecr_ray.jobs.specs import recipes, stale, write_all
from ecr_ray.serve.deploy import serve_config
from ecr_ray.submission import recipe_jobs

KUBERAY = PROJECT_ROOT / "cluster" / "kuberay"


def test_jobs_and_serve_are_up_to_date_with_the_recipes():
    assert stale(PROJECT_ROOT, recipes()) == [], "regenerate them: `ecr-ray specs`"


def test_a_changed_recipe_leaves_its_files_stale(tmp_path):
    """The check itself: a file edited by hand, one missing and one of a job that does not exist are all named."""
    write_all(tmp_path, ["demo"])
    assert stale(tmp_path, ["demo"]) == []
    (tmp_path / "serve" / "demo.yaml").write_text("applications: []\n")
    (tmp_path / "jobs" / "demo" / "data.yaml").unlink()
    (tmp_path / "jobs" / "demo" / "gone.yaml").write_text("entrypoint: x\n")
    assert stale(tmp_path, ["demo"]) == ["jobs/demo/data.yaml", "serve/demo.yaml", "jobs/demo/gone.yaml (no such job)"]
    p = subprocess.run(
        [sys.executable, "-m", "ecr_ray.jobs.specs", "--check", "--recipe", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "serve/demo.yaml" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_every_spec_is_what_ray_job_submission_takes():
    params = set(inspect.signature(JobSubmissionClient.submit_job).parameters) - {"self"}
    jobs = set(job_names())
    for recipe in recipes():
        for job in recipe_jobs():
            spec = yaml.safe_load((PROJECT_ROOT / "jobs" / recipe / f"{job}.yaml").read_text())
            assert set(spec) <= params, f"jobs/{recipe}/{job}.yaml: {set(spec) - params} not submit_job's"
            RuntimeEnv(**spec["runtime_env"])  # Ray's own validation
            module = spec["entrypoint"].split()[2]
            assert module == f"ecr_ray.jobs.{job}" and job in jobs
            assert all(isinstance(v, str) for v in spec["metadata"].values())


def test_the_kuberay_rayjob_submits_the_paper_pipeline_spec():
    spec = yaml.safe_load((PROJECT_ROOT / "jobs" / "paper" / "pipeline.yaml").read_text())
    job = yaml.safe_load((KUBERAY / "rayjob.yaml").read_text())["spec"]
    assert job["entrypoint"] == spec["entrypoint"]
    assert yaml.safe_load(job["runtimeEnvYAML"]) == spec["runtime_env"]
    assert (job["entrypointNumCpus"], job["entrypointNumGpus"]) == (spec["entrypoint_num_cpus"], 0)
    assert job["metadata"] == spec["metadata"]


def test_the_kuberay_rayservice_carries_serve_paper_yaml():
    written = yaml.safe_load((PROJECT_ROOT / "serve" / "paper.yaml").read_text())
    service = yaml.safe_load((KUBERAY / "rayservice.yaml").read_text())["spec"]["serveConfigV2"]
    assert yaml.safe_load(service) == written == serve_config(load_config("paper"), "paper")


def test_a_recipes_relative_directories_stay_relative_in_its_serve_config():
    """serve/demo.yaml is the same on every machine: the recipe's relative run_dir is left to the recipe; a run_dir
    given on the command line is written absolute (where it was meant)."""
    demo = serve_config(load_config("demo"), "demo")["applications"][0]["args"]
    assert "run_dir" not in demo and "data_dir" not in demo
    given = serve_config(load_config("demo", {"run_dir": "runs/elsewhere"}), "demo")["applications"][0]["args"]
    assert Path(given["run_dir"]).is_absolute() and given["run_dir"].endswith("runs/elsewhere")
    paper = serve_config(load_config("paper"), "paper")["applications"][0]["args"]
    assert paper["run_dir"] == "/mnt/shared/ecr-runs/paper" and paper["data_dir"] == "/mnt/shared/ecr-data"
