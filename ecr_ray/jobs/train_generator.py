"""Fine-tune the emotion-aligned generator on the review DB (Ray Train; PEFT LoRA or full; optional DeepSpeed).
Skipped when a complete run with this config exists; an interrupted run resumes from its latest checkpoint."""

from __future__ import annotations

import sys

from ecr_ray.generator.train import STAGE

from ._common import resumable, resumable_options, stage_job
from .cli import run_job

main = stage_job(STAGE, __doc__, resumable, resumable_options)


if __name__ == "__main__":
    sys.exit(run_job(main))
