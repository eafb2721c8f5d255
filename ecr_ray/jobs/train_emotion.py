"""Train the user-emotion classifier on the seed labels (Ray Train), then label every user turn (Ray Data) and link
entity emotions. Skipped when up to date; the classifier is reused when only the labelling settings changed."""

from __future__ import annotations

import sys

from ecr_ray.emotion.train import fit

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__.splitlines()[0], argv, force=True)
    with ray_for(args, cfg, ("train_emotion",)):
        manifest = fit(cfg, force=args.force)
    print_json({"valid": manifest["valid"], **manifest["counts"], "seconds": manifest.get("seconds")})
    print(f"emotions written to {cfg.run_path / 'emotions'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
