"""Build the emotional review database (Appendix A.2 filters, Ray Data entity linking, per-movie knowledge).
Skipped when up to date."""

from __future__ import annotations

import contextlib
import sys

from ecr_ray.reviews.build import fit

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(
        __doc__.splitlines()[0],
        argv,
        lambda p: p.add_argument(
            "--engine",
            choices=("ray", "local"),
            default="ray",
            help="ray: Ray Data actor pool of generator.link_resources (default); local: one plain loop",
        ),
        force=True,
    )
    with ray_for(args, cfg, ("build_reviews",)) if args.engine == "ray" else contextlib.nullcontext():
        manifest = fit(cfg, engine=args.engine, force=args.force)
    print_json(manifest)
    print(f"review DB written to {cfg.run_path / 'reviews'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
