"""Train the emotion-aware recommender with Ray Train (checkpoint per epoch, resumable); evaluate test once.

Writes run_dir/recommender/<variant>/: model.pt (best on validation loss), meta.json, history.json, metrics.json,
test_predictions.npz, manifest.json, prepared/ and ray/ (the Ray Train run). Rerunning with the same config skips a
finished run and resumes an interrupted one from its latest checkpoint.
"""

from __future__ import annotations

import sys

from ecr_ray.recommender.train import STAGE

from ._common import stage_job
from .cli import run_job

main = stage_job(STAGE, __doc__)


if __name__ == "__main__":
    sys.exit(run_job(main))
