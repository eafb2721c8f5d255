"""What a cluster user submits: the Ray Job specification of each job of a recipe, as Ray's job submission takes it
(`JobSubmissionClient.submit_job` keyword arguments; `ray job submit` flags; a KubeRay RayJob's spec), written to
the checkout's top-level `jobs/<recipe>/<job>.yaml` by `ecr-ray specs` (tests/test_specs.py fails when one is stale).

A job's driver orchestrates and loads no model: it reserves nothing itself (`entrypoint_num_cpus: 0`, so it runs on
the head node, which the cluster configs start with `num-cpus: 0`); its Ray work reserves what the recipe fields in
`cluster.JOB_RESOURCES` (the stages' from their `STAGE.resources`) say, listed in each file's header. Every node
runs the project image (the Dockerfile), so the runtime_env installs nothing and ships no code.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from .cluster import JOB_RESOURCES
from .config import Config, Resources
from .stages import STAGES

RUNTIME_ENV: dict[str, Any] = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
"""What every job's processes get beyond the image: the tokenizers' own thread pool off (Ray's workers are the
parallelism), as cluster/runtime_env.yaml sets it for clusters not started from the image."""
OTHER_JOBS = ("label_emotions", "tune", "merge")
"""Jobs a recipe may submit on their own, besides the pipeline and its stages' jobs."""


def recipe_jobs() -> tuple[str, ...]:
    """The jobs with a specification: the pipeline, each of its stages' jobs in pipeline order, then the others."""
    staged = [job for stage in STAGES for job in stage.jobs]
    return ("pipeline", *staged, *(j for j in OTHER_JOBS if j not in staged))


def entry_module(job: str) -> str:
    """What `python -m` runs for `job`: its module, or for a stage declared without one, the CLI with the job's name
    (ecr_ray/jobs/cli.py)."""
    return f"ecr_ray.jobs.{job}" if importlib.util.find_spec(f"ecr_ray.jobs.{job}") else f"ecr_ray.jobs.cli {job}"


def job_spec(recipe: str, job: str) -> dict[str, Any]:
    """`JobSubmissionClient.submit_job(**job_spec(recipe, job))` submits `job` of `recipe`."""
    return {
        "entrypoint": f"python -m {entry_module(job)} --recipe {recipe}",
        "runtime_env": RUNTIME_ENV,
        "entrypoint_num_cpus": 0,
        "entrypoint_num_gpus": 0,
        "metadata": {"recipe": recipe, "job": job},
    }


def submit_command(spec: dict[str, Any]) -> str:
    """The `ray job submit` command line of `spec` (RAY_ADDRESS names the cluster)."""
    return shlex.join(
        [
            "ray",
            "job",
            "submit",
            "--runtime-env-json",
            json.dumps(spec["runtime_env"], separators=(",", ":")),
            "--entrypoint-num-cpus",
            str(spec["entrypoint_num_cpus"]),
            "--entrypoint-num-gpus",
            str(spec["entrypoint_num_gpus"]),
            "--metadata-json",
            json.dumps(spec["metadata"], separators=(",", ":")),
            "--",
        ]
        + shlex.split(spec["entrypoint"])
    )


def _reserves(cfg: Config, job: str) -> list[str]:
    jobs = [j for stage in STAGES for j in stage.jobs] if job == "pipeline" else [job]
    out = []
    for name in dict.fromkeys(f for j in jobs for f in JOB_RESOURCES.get(j, ())):
        if name == "serve.deployments":
            continue
        section, field = name.split(".")
        r: Resources = getattr(getattr(cfg, section), field)
        out.append(f"{name}: {r.workers} × ({r.cpus:g} CPU, {r.gpus:g} GPU)")
    return out


def spec_text(cfg: Config, recipe: str, job: str) -> str:
    """The file `jobs/<recipe>/<job>.yaml`: a header (how to submit it, what its Ray work reserves) and the spec."""
    spec = job_spec(recipe, job)
    reserves = _reserves(cfg, job) or ["nothing beyond the driver"]
    head = [
        f"# Ray job `{job}` of recipe {recipe!r}: written by `ecr-ray specs`; edit the recipe and regenerate.",
        "# Submit it to the cluster RAY_ADDRESS names (docs/cluster.md):",
        f"#   {submit_command(spec)}",
        "# or in Python: JobSubmissionClient(address).submit_job(**yaml.safe_load(open(this_file)))",
        "# Its Ray work reserves (recipe fields):",
        *(f"#   {r}" for r in reserves),
    ]
    return "\n".join(head) + "\n" + yaml.safe_dump(spec, sort_keys=False)


def write_job_specs(cfg: Config, recipe: str, root: Path) -> list[Path]:
    """`root/jobs/<recipe>/<job>.yaml` for every job of `recipe_jobs`; files of jobs no longer listed are removed."""
    folder = root / "jobs" / recipe
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for job in recipe_jobs():
        path = folder / f"{job}.yaml"
        path.write_text(spec_text(cfg, recipe, job))
        written.append(path)
    for stale in set(folder.glob("*.yaml")) - set(written):
        stale.unlink()
    return written
