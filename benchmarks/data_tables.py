"""Build the tables from real data and print the figures reported in docs/data.md.

.venv/bin/python benchmarks/data_tables.py --data-dir ../shared/data [--dataset redial|inspired] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from ecr_ray.config import load_config
from ecr_ray.data.tables import build_tables


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--dataset", default="redial")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config("cpu", {"data.data_dir": args.data_dir, "data.dataset": args.dataset, "run_dir": tmp})
            t0 = time.perf_counter()
            manifest = build_tables(cfg)
            times.append(time.perf_counter() - t0)
    c = manifest["counts"]
    print(
        f"dataset {args.dataset}: {c['entities']} entities, {c['relations']} relations, {c['items']} items, "
        f"{c['kg_triples']} KG triples"
    )
    print(
        "| split | conversations | turns | messages | samples | like | dislike | not said | target in context | "
        "entities/turn | entities/user turn |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for split, s in c["splits"].items():
        fb = s["samples_by_feedback"]
        print(
            f"| {split} | {s['conversations']} | {s['turns']} | {s['messages']} | {s['samples']} | {fb['like']} | "
            f"{fb['dislike']} | {fb['not_said']} | {s['samples_target_in_context']} | "
            f"{s['linked_entities_per_turn']} | {s['linked_entities_per_user_turn']} |"
        )
    print(f"feedback answers (all conversations): {c['feedback']}")
    print(f"mentions not turned into samples: {manifest['not_sampled']}")
    print(
        f"build time: median {statistics.median(times):.2f} s over {len(times)} runs "
        f"(min {min(times):.2f}, max {max(times):.2f}); "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
