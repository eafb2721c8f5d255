"""Load and fault benchmark of the ECR Serve app on 127.0.0.1: latency p50/p95/p99 and throughput of
POST /v1/recommend (recommendation only, and with generation) at several concurrencies, then a fault run that
kills one Recommender replica mid-load and counts the errors clients saw while Serve replaced it.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/serve_load.py --run-dir runs/demo
    ... --concurrency 1,8,32 --requests 200 --gen-requests 16 --fault-seconds 20 --out benchmarks/results/serve_load.json

Bounded: a fixed number of requests per setting, a wall-clock cap per setting, 127.0.0.1 only. The client shares
the machine with the server, so the figures include its CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np

from ecr_ray.config import load_config


def dialogues(run_dir: Path, n: int = 200) -> list[list[dict]]:
    """Prefixes of test conversations ending at a user turn (realistic lengths and entity mentions)."""
    import pyarrow.parquet as pq

    t = pq.read_table(run_dir / "tables" / "turns.parquet", columns=["conversation_id", "split", "turn_index",
                                                                      "role", "text"]).to_pylist()
    by_conv: dict[str, list[dict]] = {}
    for r in sorted(t, key=lambda r: (r["conversation_id"], r["turn_index"])):
        if r["split"] == "test" and r["text"].strip():
            by_conv.setdefault(r["conversation_id"], []).append({"role": r["role"], "text": r["text"][:1000]})
    out = []
    for turns in by_conv.values():
        for k in range(1, min(len(turns), 12) + 1):
            if turns[k - 1]["role"] == "user":
                out.append(turns[:k])
    if not out:
        raise SystemExit(f"no test dialogues in {run_dir}/tables")
    rng = np.random.default_rng(0)
    return [out[i] for i in rng.choice(len(out), size=min(n, len(out)), replace=False)]


async def run_load(url: str, bodies: list[dict], concurrency: int, n: int, cap_s: float,
                   on_progress=None) -> dict:
    """`n` requests from `concurrency` closed-loop clients (or until cap_s); latency and error counts."""
    lat, errors, statuses = [], [], {}
    sent = 0

    async def worker(session):
        nonlocal sent
        while sent < n and time.perf_counter() < t_end:
            body = bodies[sent % len(bodies)]
            sent += 1
            t0 = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/recommend", json=body) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200:
                        lat.append(time.perf_counter() - t0)
                    else:
                        errors.append(f"HTTP {r.status}: {(await r.text())[:120]}")
            except Exception as e:  # connection reset etc.: counted, reported
                errors.append(f"{type(e).__name__}: {e}"[:120])
            if on_progress:
                on_progress(time.perf_counter())

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        t_start = time.perf_counter()
        t_end = t_start + cap_s
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t_start
    ms = np.array(lat) * 1000 if lat else np.array([np.nan])
    return {"concurrency": concurrency, "requests": len(lat) + len(errors), "ok": len(lat), "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], "statuses": statuses, "wall_s": round(wall, 2),
            "throughput_rps": round(len(lat) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "mean_ms": round(float(np.mean(ms)), 1)}


def replicas(deployment: str) -> list[str]:
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and f"#{deployment}#" in a["name"])


def fault_run(url: str, bodies: list[dict], concurrency: int, seconds: float) -> dict:
    """Load for `seconds`; one third in, ray.kill one Recommender replica; report errors and recovery time."""
    import ray
    from ray import serve

    before = replicas("Recommender")
    victim = before[0]
    info: dict = {"replicas_before": len(before), "killed": victim}

    def killer():
        time.sleep(seconds / 3)
        info["killed_at_s"] = round(seconds / 3, 1)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 120:  # until Serve reports the replacement RUNNING again
            names = replicas("Recommender")
            st = serve.status().applications["ecr"].deployments["Recommender"]
            if victim not in names and len(names) >= len(before) and st.status == "HEALTHY":
                info["recovered_after_s"] = round(time.perf_counter() - t0, 1)
                return
            time.sleep(0.2)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    res = asyncio.run(run_load(url, bodies, concurrency, 10**9, seconds))
    th.join(timeout=130)
    return {**res, **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="demo")
    ap.add_argument("--run-dir", required=True, help="a run directory with all stages' artifacts")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests", type=int, default=200, help="recommendation-only requests per concurrency")
    ap.add_argument("--gen-requests", type=int, default=16, help="requests with generation per concurrency")
    ap.add_argument("--cap-s", type=float, default=120, help="wall-clock cap per setting")
    ap.add_argument("--fault-seconds", type=float, default=20, help="0 = no fault run")
    ap.add_argument("--fault-replicas", type=int, default=2, help="Recommender replicas during the fault run")
    ap.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = ap.parse_args()

    import ray
    from ray import serve

    from serve.app import build_app

    deployments = {"Recommender": {"num_replicas": args.fault_replicas, "ray_actor_options": {"num_cpus": 0.25}}}
    cfg = load_config(args.recipe, {"run_dir": args.run_dir, "serve.deployments": deployments})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    bodies = dialogues(cfg.run_path)
    rec_only = [{"dialogue": d, "top_k": 10, "generate": False} for d in bodies]
    with_gen = [{"dialogue": d, "top_k": 10, "generate": True} for d in bodies]
    levels = [int(c) for c in args.concurrency.split(",")]
    report: dict = {"recipe": args.recipe, "url": url, "dialogues": len(bodies), "runs": []}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        t0 = time.perf_counter()
        serve.run(build_app(cfg), name="ecr", route_prefix="/")
        report["startup_s"] = round(time.perf_counter() - t0, 1)
        asyncio.run(run_load(url, rec_only, 2, 20, 60))  # warm-up (first requests load lazily-built caches)
        asyncio.run(run_load(url, with_gen, 1, 2, 120))
        for mode, bodies_, n in (("recommend", rec_only, args.requests), ("recommend+generate", with_gen,
                                                                          args.gen_requests)):
            for c in levels:
                r = asyncio.run(run_load(url, bodies_, c, max(n, c), args.cap_s))
                report["runs"].append({"mode": mode, **r})
                print(f"{mode:20s} c={c:<3d} n={r['requests']:<4d} p50={r['p50_ms']:8.1f} ms  p95={r['p95_ms']:8.1f}"
                      f"  p99={r['p99_ms']:8.1f}  {r['throughput_rps']:7.2f} req/s  errors={r['errors']}", flush=True)
        if args.fault_seconds > 0:
            f = fault_run(url, rec_only, 8, args.fault_seconds)
            report["fault"] = f
            print(f"fault run (c=8, {args.fault_seconds:.0f}s, killed 1 of {f['replicas_before']} Recommender "
                  f"replicas at {f.get('killed_at_s')}s): ok={f['ok']} errors={f['errors']} "
                  f"recovered_after={f.get('recovered_after_s')}s p99={f['p99_ms']} ms {f['error_samples']}",
                  flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
