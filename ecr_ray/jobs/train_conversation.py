"""Fine-tune the conversation module (the recommender's turn with <movie> slots) on ReDial's recommender turns (Ray
Train; PEFT LoRA). Skipped when a complete run with this config exists; an interrupted run resumes."""

from __future__ import annotations

import sys

from ecr_ray.conversation.train import STAGE

from ._common import resumable, resumable_options, stage_job
from .cli import run_job

main = stage_job(STAGE, __doc__, resumable, resumable_options)


if __name__ == "__main__":
    sys.exit(run_job(main))
