"""Review entity linking: the build_reviews job's Ray Data path vs its plain loop, same reviews, same run.

The shipped review file is small (2,459 reviews), so the corpus is also repeated ×k to show where an actor pool
starts to pay (a user's own review crawl can be far larger). Both engines are `ecr_ray.reviews.build.link_all`; each
time includes building the linker (the Ray path builds one per actor); `ray.init` is reported apart.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/review_linking.py --run-dir runs/cpu --factors 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import pyarrow.parquet as pq
    import ray

    from ecr_ray.config import load_config
    from ecr_ray.reviews.build import link_all

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/cpu", help="a run with reviews/reviews.parquet (build_reviews)")
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--factors", default="1,8,32", help="corpus = the reviews repeated this many times")
    ap.add_argument("--workers", type=int, default=2, help="Ray Data actors (generator.link_resources.workers)")
    ap.add_argument("--out", help="write the JSON here too")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = load_config(a.recipe, {"run_dir": a.run_dir, "generator.link_resources": {"workers": a.workers}})
    reviews = [
        {"review": r["review"]}
        for r in pq.read_table(cfg.run_path / "reviews" / "reviews.parquet", columns=["review"]).to_pylist()
    ]
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    report: dict = {
        "cpus": os.cpu_count(),
        "ray_init_s": round(time.perf_counter() - t0, 2),
        "workers": a.workers,
        "runs": [],
    }
    try:
        for k in (int(f) for f in a.factors.split(",")):
            rows = reviews * k
            t0 = time.perf_counter()
            loop = link_all(rows, cfg, engine="local")
            t_loop = time.perf_counter() - t0
            t0 = time.perf_counter()
            par = link_all(rows, cfg, engine="ray")
            t_ray = time.perf_counter() - t0
            assert [r["mentions"] for r in par] == [r["mentions"] for r in loop]  # same output
            r = {
                "reviews": len(rows),
                "loop_s": round(t_loop, 2),
                "ray_data_s": round(t_ray, 2),
                "ratio_loop_over_ray": round(t_loop / t_ray, 2),
                "reviews_per_s": {"loop": round(len(rows) / t_loop), "ray_data": round(len(rows) / t_ray)},
            }
            report["runs"].append(r)
            print(json.dumps(r), flush=True)
    finally:
        ray.shutdown()
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
