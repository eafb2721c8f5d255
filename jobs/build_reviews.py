"""Build the emotional review database (Appendix A.2 filters, Ray Data entity linking, per-movie knowledge)."""

from __future__ import annotations

import os
import sys

from ecr_ray.cli import run_job
from ecr_ray.reviews import build_review_db

from ._common import parse, print_json


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__, argv, lambda p: p.add_argument(
        "--engine", choices=("ray", "local"), default="ray",
        help="ray: Ray Data actor pool of generator.link_workers (default); local: one plain loop"))
    import ray

    started = args.engine == "ray" and not ray.is_initialized()
    if started:
        # Under `ray job submit` RAY_ADDRESS names the cluster, whose size is its own: num_cpus is for a local start.
        local = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": max(cfg.generator.link_workers, 1)}
        ray.init(include_dashboard=False, log_to_driver=False, **local)
    try:
        manifest = build_review_db(cfg, engine=args.engine)
    finally:
        if started:
            ray.shutdown()
    print_json(manifest)
    print(f"review DB written to {cfg.run_path / 'reviews'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
