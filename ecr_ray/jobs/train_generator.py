"""Fine-tune the emotion-aligned generator on the review DB (Ray Train; PEFT LoRA or full; optional DeepSpeed).
Skipped when a complete run with this config exists; an interrupted run resumes from its latest checkpoint."""

from __future__ import annotations

import sys

from ecr_ray.generator.train import fit

from ._common import resumable_fit
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    return resumable_fit(__doc__, fit, "generator", argv)


if __name__ == "__main__":
    sys.exit(run_job(main))
