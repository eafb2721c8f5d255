"""Report the trained recommender variants side by side with the paper (Table 1 / Table 3): JSON, Markdown, plots.

Reads run_dir/recommender/<variant>/ for every variant trained in this run directory (train them with
`ecr-ray train_recommender --recommender.variant ...`) and writes run_dir/eval/recommender.{json,md},
recommender_curves.png (training curves) and recommender_ablation.png. Loads no model: it reads the saved test
predictions.
"""

from __future__ import annotations

import sys

from ecr_ray.recommender.evaluate import write_report

from ._common import parse, print_json
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse(__doc__.splitlines()[0], argv)
    res = write_report(cfg)
    print(res.pop("table"))
    print_json(res)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
