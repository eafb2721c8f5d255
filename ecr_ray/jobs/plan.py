"""The memory plan: every GPU stage's need per GPU next to the node types it can land on (exit 2 if one does not fit).

    ecr-ray plan --recipe paper                          # the node types of cluster/*.yaml and cluster/kuberay/*.yaml
    ecr-ray plan --recipe paper --cluster path/to/cluster --generator.micro_batch_size 8

Computed from the models' configs on the meta device: nothing is downloaded, no GPU is needed (ecr_ray/plan.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ecr_ray.config import ConfigError
from ecr_ray.plan import HEADROOM, check, cluster_dir, node_types, plan, table_markdown

from ._common import parse
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--cluster", help="folder of the cluster configs (default: ECR_CLUSTER_DIR, else cluster/)")

    cfg, args = parse(__doc__.splitlines()[0], argv, extra)
    folder = Path(args.cluster) if args.cluster else cluster_dir()
    if folder is None or not folder.is_dir():
        raise ConfigError(f"no cluster configs at {folder or 'cluster/'}: give --cluster or ECR_CLUSTER_DIR")
    nodes = node_types(folder)
    table = plan(cfg, nodes)
    print(f"memory plan of recipe {cfg.recipe!r} against {len(nodes)} GPU node types in {folder}:\n")
    print(table_markdown(table) if table else "(no stage of this recipe asks for a GPU)")
    print(f"\nper GPU: what PyTorch allocates; it must leave >= {HEADROOM:.0%} of the GPU free")
    check(table)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
