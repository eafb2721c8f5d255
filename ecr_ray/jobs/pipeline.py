"""Run the whole ECR pipeline: data → emotions → reviews → recommender → generator, with evaluations.

Each stage runs as its own job (`python -m ecr_ray.jobs.<name>`) with the same recipe and overrides; stages that are
up to date (same config, same inputs) are skipped, and a failed run resumes at the stage that failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from ecr_ray.pipeline import STEPS, run_pipeline

from ._common import parse
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Pipeline-only flags are stripped; everything else (recipe, overrides) goes to every stage unchanged.
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--only", nargs="+", choices=[s.name for s in STEPS], help="run only these stages")
    own.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    flags, job_args = own.parse_known_args(argv)
    cfg, _ = parse(__doc__.splitlines()[0], job_args)
    state = run_pipeline(cfg, job_args, flags.only, flags.force)
    print(json.dumps(state, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
