"""Fine-tune the emotion-aligned generator on the review DB (Ray Train; PEFT LoRA or full; optional DeepSpeed)."""

from __future__ import annotations

import sys

from ecr_ray.cli import run_job
from ecr_ray.models.generator import train

from ._common import parse, print_json


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--run-name", default="generator", help="Ray Train run name; rerun it to resume (default: generator)")
        p.add_argument("--stop-after-steps", type=int, default=None,
                       help="end this invocation after this many steps in all (resume later with the same run name)")

    cfg, args = parse(__doc__, argv, extra)
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=True, log_to_driver=True)  # stack.md: Train V2 floods the log without it
    try:
        manifest = train(cfg, args.run_name, args.stop_after_steps)
    finally:
        if started:
            ray.shutdown()
    print_json({k: v for k, v in manifest.items() if k != "losses"})
    print(f"generator written to {cfg.run_path / 'generator'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
