"""Build the emotional review database (Appendix A.2 filters, Ray Data entity linking, per-movie knowledge).
Skipped when up to date."""

from __future__ import annotations

import sys

from ecr_ray.reviews.build import STAGE

from ._common import stage_job
from .cli import run_job


def _engine(p) -> None:
    p.add_argument(
        "--engine",
        choices=("ray", "local"),
        default="ray",
        help="ray: Ray Data actor pool of generator.link_resources (default); local: one plain loop",
    )


main = stage_job(STAGE, __doc__, _engine, lambda args: {"engine": args.engine}, ray=lambda args: args.engine == "ray")


if __name__ == "__main__":
    sys.exit(run_job(main))
