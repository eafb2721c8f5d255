"""Train the user-emotion classifier on the seed labels (Ray Train), then label every user turn (Ray Data) and link
entity emotions. Skipped when up to date; the classifier is reused when only the labelling settings changed."""

from __future__ import annotations

import sys

from ecr_ray.emotion.train import STAGE

from ._common import stage_job
from .cli import run_job

main = stage_job(STAGE, __doc__)


if __name__ == "__main__":
    sys.exit(run_job(main))
