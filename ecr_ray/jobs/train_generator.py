"""Fine-tune the emotion-aligned generator on the review DB (Ray Train; PEFT LoRA or full; optional DeepSpeed).
Skipped when a complete run with this config exists; an interrupted run resumes from its latest checkpoint."""

from __future__ import annotations

import sys

from ecr_ray.generator.train import fit

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--run-name", help="Ray Train run name; rerun it to resume (default: keyed by the config)")
        p.add_argument(
            "--stop-after-steps",
            type=int,
            default=0,
            help="end this invocation after this many steps in all (resume later with the same run name)",
        )

    cfg, args = parse(__doc__.splitlines()[0], argv, extra, force=True)
    with ray_for(args):
        manifest = fit(cfg, args.run_name, args.stop_after_steps, force=args.force)
    print_json({k: v for k, v in manifest.items() if k != "losses"})
    print(f"generator written to {cfg.run_path / 'generator'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
