"""Merge the generator's LoRA adapter into its base model: the weights `generator.engine: vllm` serves.
Skipped when the merged weights are up to date; switching the engine never retrains the generator."""

from __future__ import annotations

import sys

from ecr_ray.generator.merge import STAGE

from ._common import ray_for, stage_job
from .cli import run_job

# Ray only when there is something to merge: the stage enters `ray_for` itself.
main = stage_job(STAGE, __doc__, options=lambda args: {"ray": lambda: ray_for(args)}, ray=lambda args: False)


if __name__ == "__main__":
    sys.exit(run_job(main))
