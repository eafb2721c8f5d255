"""Merge the generator's LoRA adapter into its base model: the weights `generator.engine: vllm` serves.
Skipped when the merged weights are up to date; switching the engine never retrains the generator."""

from __future__ import annotations

import sys

from ecr_ray.generator.merge import fit

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__.splitlines()[0], argv, force=True)
    manifest = fit(cfg, force=args.force, ray=lambda: ray_for(args))  # Ray only when there is something to merge
    print_json(manifest)
    print(f"merged weights in {cfg.run_path / 'generator' / 'merged'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
