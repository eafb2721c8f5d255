"""Run the whole ECR pipeline: data → emotions → reviews → recommender → conversation → generator, with evaluations.

Each stage's jobs run in this one process (one Ray job, joined once), with the same recipe and overrides as when
submitted one by one; stages that are up to date (same config, same inputs) are skipped, and a failed run resumes at
the stage that failed. Before any work, every stage still to run is checked to fit the cluster's node types.
"""

from __future__ import annotations

import argparse
import json
import sys

from ecr_ray.pipeline import pending, run_pipeline
from ecr_ray.stages import STAGES

from ._common import job_main, parse, ray_for
from .cli import run_job

# The pipeline's jobs by name, imported here, before Ray is joined (as cli.py finds them).
JOBS = {job: job_main(job) for stage in STAGES for job in stage.jobs}


def run_stage_job(name: str, argv: list[str]) -> int | None:
    """One job's main, in this process."""
    return JOBS[name](argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Pipeline-only flags are stripped; everything else (recipe, overrides) goes to every stage unchanged.
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], help="run only these stages")
    own.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    flags, job_args = own.parse_known_args(argv)
    cfg, args = parse(__doc__.splitlines()[0], job_args)
    jobs = tuple(j for stage in pending(cfg, flags.only, flags.force) for j in stage.jobs)
    with ray_for(args, cfg, jobs):
        state = run_pipeline(cfg, job_args, run_stage_job, flags.only, flags.force)
    print(json.dumps(state, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
