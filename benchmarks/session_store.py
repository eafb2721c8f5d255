"""Latency of the shared session store (ecr_ray/serve/sessions.py): one read and one commit of a 20-turn session,
as an ingress replica makes them, on a local Ray instance.

    .venv/bin/python benchmarks/session_store.py [--calls 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500)
    a = ap.parse_args()
    import ray

    from ecr_ray.serve.sessions import Session, connect

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        store = connect("benchmark", 1000, 3600)
        session = Session(turns=[{"role": "user", "text": "x" * 200}] * 20, emotions=[None] * 20)
        sid = ray.get(store.create.remote("ip:127.0.0.1", None))
        ray.get(store.commit.remote(sid, 0, session))
        for _ in range(50):  # warm-up
            ray.get(store.get.remote(sid))
        gets, commits = [], []
        for _ in range(a.calls):
            t = time.perf_counter()
            ray.get(store.get.remote(sid))
            gets.append(time.perf_counter() - t)
        for version in range(1, a.calls + 1):
            t = time.perf_counter()
            ray.get(store.commit.remote(sid, version, session))
            commits.append(time.perf_counter() - t)

        def ms(xs, q):
            return sorted(xs)[int(q * (len(xs) - 1))] * 1000

        print(
            f"get p50 {statistics.median(gets) * 1000:.2f} ms p95 {ms(gets, 0.95):.2f} ms; "
            f"commit p50 {statistics.median(commits) * 1000:.2f} ms p95 {ms(commits, 0.95):.2f} ms "
            f"({a.calls} calls each, 20-turn session)"
        )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
