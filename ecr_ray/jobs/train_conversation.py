"""Fine-tune the conversation module (the recommender's turn with <movie> slots) on ReDial's recommender turns (Ray
Train; PEFT LoRA). Skipped when a complete run with this config exists; an interrupted run resumes."""

from __future__ import annotations

import sys

from ecr_ray.conversation.train import fit

from ._common import resumable_fit
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    return resumable_fit(__doc__, fit, "conversation", argv)


if __name__ == "__main__":
    sys.exit(run_job(main))
