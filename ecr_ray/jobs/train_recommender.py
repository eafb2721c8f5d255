"""Train the emotion-aware recommender with Ray Train (checkpoint per epoch, resumable); evaluate test once.

Writes run_dir/recommender/<variant>/: model.pt (best on validation loss), meta.json, history.json, metrics.json,
test_predictions.npz, manifest.json, prepared/ and ray/ (the Ray Train run). Rerunning with the same config skips a
finished run and resumes an interrupted one from its latest checkpoint.
"""

from __future__ import annotations

import sys

from ecr_ray.recommender.train import fit, output_dir

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__.splitlines()[0], argv, force=True)
    with ray_for(args, cfg, ("train_recommender",)):
        manifest = fit(cfg, force=args.force)
    print_json(manifest)
    print(f"recommender written to {output_dir(cfg)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
