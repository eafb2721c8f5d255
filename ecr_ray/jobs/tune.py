"""Ray Tune sweeps of the paper's Appendix B: feedback weights (recommender) and prompt knowledge (generator).

    ecr-ray tune --recipe R --sweep feedback   [--tune.full_grid true] [--tune.scheduler asha]
    ecr-ray tune --recipe R --sweep knowledge  [--tune.knowledge_eval_samples 50]

Rerunning the same command resumes an interrupted sweep. Writes `<run_dir>/tune/<sweep>/`: results.csv, results.md,
<sweep>_sweep.png and best_<sweep>.yaml (a recipe).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ecr_ray.tuning.sweep import run_sweep

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(
        __doc__.splitlines()[0],
        argv,
        lambda p: p.add_argument("--sweep", choices=["feedback", "knowledge"], required=True),
    )
    with ray_for(args, cfg, ("tune",)):
        summary = run_sweep(cfg, args.sweep)
    print_json(summary)
    print(Path(summary["results_md"]).read_text(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
