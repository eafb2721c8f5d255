"""Load and fault benchmark of the ECR Serve app on 127.0.0.1: latency p50/p95/p99 and throughput of
POST /v1/recommend (recommendation only, and with generation) at several concurrencies, then a fault run that
kills one Recommender replica mid-load and counts the errors clients saw while Serve replaced it.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/serve_load.py --run-dir runs/demo
    ... --dialogues <a run on real data>/tables --concurrency 1,8,32 --requests 200 --gen-requests 16 \
        --fault-seconds 20 --out benchmarks/results/serve_load.json

Request patterns: `replay` = a stateless chat client re-sending the dialogue after each user turn (what the web chat
and OpenAI clients do; per-text caches make only the new turns cost), `cold` = every request a conversation the
server has never seen (worst case), `cached` = replay requests whose turns are all cached (the serving floor). No
conversation is sent in two settings.

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


def conversations(tables_dir: Path, seed: int = 0) -> list[list[dict]]:
    """Every conversation of turns.parquet (all splits) as [{role, text}], in a seeded random order."""
    import pyarrow.parquet as pq

    t = pq.read_table(
        tables_dir / "turns.parquet", columns=["conversation_id", "turn_index", "role", "text"]
    ).to_pylist()
    by_conv: dict[str, list[dict]] = {}
    for r in sorted(t, key=lambda r: (r["conversation_id"], r["turn_index"])):
        if r["text"].strip():
            by_conv.setdefault(r["conversation_id"], []).append({"role": r["role"], "text": r["text"][:1000]})
    convs = [c for c in by_conv.values() if any(x["role"] == "user" for x in c)]
    if not convs:
        raise SystemExit(f"no conversations in {tables_dir}/turns.parquet")
    rng = np.random.default_rng(seed)
    return [convs[i] for i in rng.permutation(len(convs))]


def scripts(convs, pattern: str, n: int, max_turns: int = 12) -> list[list[list[dict]]]:
    """Request sequences for `n` requests, taking conversations off `convs` (an iterator: never reused).

    replay: a stateless chat client — one script per conversation, the dialogue re-sent after each user turn
            (prefixes ending at a user turn, up to `max_turns`); each request adds ~2 turns the server has not seen.
    cold:   one request per conversation, its longest prefix up to `max_turns`: every turn is new to the server.
    cached: the replay requests, sent once untimed first: every turn is cached (the serving floor: HTTP, Serve hops,
            scoring; also what a client re-asking about the same dialogue sees).
    """
    out, total = [], 0
    while total < n:
        turns = next(convs, None)
        if turns is None:
            raise SystemExit(f"not enough conversations for {n} {pattern} requests: use a bigger --dialogues table")
        ends = [k for k in range(1, min(len(turns), max_turns) + 1) if turns[k - 1]["role"] == "user"]
        prefixes = [turns[: ends[-1]]] if pattern == "cold" else [turns[:k] for k in ends]
        out.append(prefixes[: n - total])
        total += len(out[-1])
    return out


async def run_load(
    url: str, scripts_: list[list[dict]], concurrency: int, n: int, cap_s: float, on_progress=None
) -> dict:
    """Closed-loop clients, each taking the next script and sending its bodies in order, until `n` requests
    (scripts are recycled only by the open-ended fault run) or cap_s; latency and error counts."""
    lat, errors, statuses = [], [], {}
    sent, next_script = 0, 0

    async def worker(session):
        nonlocal sent, next_script
        while sent < n and time.perf_counter() < t_end:
            script = scripts_[next_script % len(scripts_)]
            next_script += 1
            for body in script:
                if sent >= n or time.perf_counter() >= t_end:
                    break
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
    return {
        "concurrency": concurrency,
        "requests": len(lat) + len(errors),
        "ok": len(lat),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "statuses": statuses,
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(lat) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(np.mean(ms)), 1),
    }


def replicas(deployment: str) -> list[str]:
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and f"#{deployment}#" in a["name"]
    )


def fault_run(url: str, scripts_: list[list[dict]], concurrency: int, seconds: float) -> dict:
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
    res = asyncio.run(run_load(url, scripts_, concurrency, 10**9, seconds))
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
    ap.add_argument(
        "--dialogues",
        default=None,
        help="tables dir whose conversations the clients send (default: <run-dir>/tables); use the real "
        "data's tables for enough distinct conversations",
    )
    ap.add_argument(
        "--patterns", default="cached,replay,cold", help="request patterns (see `scripts`): cached, replay, cold"
    )
    ap.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = ap.parse_args()

    import ray
    from ray import serve

    from ecr_ray.serve.app import build_app

    cfg = load_config(args.recipe, {"run_dir": args.run_dir})  # the recipe's deployments for the latency settings
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    tables = Path(args.dialogues) if args.dialogues else cfg.run_path / "tables"
    convs = conversations(tables)
    pool = iter(convs)  # every setting gets conversations no earlier setting sent: caches start cold for them

    def bodies(pattern: str, n: int, generate: bool) -> list[list[dict]]:
        return [[{"dialogue": d, "top_k": 10, "generate": generate} for d in sc] for sc in scripts(pool, pattern, n)]

    levels = [int(c) for c in args.concurrency.split(",")]
    report: dict = {
        "recipe": args.recipe,
        "url": url,
        "dialogues_from": str(tables),
        "conversations": len(convs),
        "deployments": cfg.serve.deployments,
        "runs": [],
    }
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        t0 = time.perf_counter()
        serve.run(build_app(cfg), name="ecr", route_prefix="/")
        report["startup_s"] = round(time.perf_counter() - t0, 1)
        asyncio.run(run_load(url, bodies("replay", 20, False), 2, 20, 60))  # warm-up: lazy init, first batches
        asyncio.run(run_load(url, bodies("replay", 2, True), 1, 2, 120))
        settings = [("recommend", p, False, args.requests) for p in args.patterns.split(",")]
        settings.append(("recommend+generate", "replay", True, args.gen_requests))
        for mode, pattern, generate, n in settings:
            for c in levels:
                b = bodies(pattern, max(n, c), generate)
                if pattern == "cached":
                    asyncio.run(run_load(url, b, c, max(n, c), args.cap_s))  # untimed pass fills the caches
                r = asyncio.run(run_load(url, b, c, max(n, c), args.cap_s))
                report["runs"].append({"mode": mode, "pattern": pattern, **r})
                print(
                    f"{mode:18s} {pattern:6s} c={c:<3d} n={r['requests']:<4d} p50={r['p50_ms']:8.1f} ms  "
                    f"p95={r['p95_ms']:8.1f}  p99={r['p99_ms']:8.1f}  {r['throughput_rps']:7.2f} req/s  "
                    f"errors={r['errors']}",
                    flush=True,
                )
        if args.fault_seconds > 0:  # redeploy with a fixed number of Recommender replicas, so one can be killed
            rec = {**cfg.serve.deployments["Recommender"], "num_replicas": args.fault_replicas}
            rec.pop("autoscaling_config", None)
            serve.run(
                build_app(
                    load_config(args.recipe, {"run_dir": args.run_dir, "serve.deployments": {"Recommender": rec}})
                ),
                name="ecr",
                route_prefix="/",
            )
            f = fault_run(url, bodies("replay", 400, False), 8, args.fault_seconds)
            report["fault"] = f
            print(
                f"fault run (c=8, {args.fault_seconds:.0f}s, killed 1 of {f['replicas_before']} Recommender "
                f"replicas at {f.get('killed_at_s')}s): ok={f['ok']} errors={f['errors']} "
                f"recovered_after={f.get('recovered_after_s')}s p99={f['p99_ms']} ms {f['error_samples']}",
                flush=True,
            )
    finally:
        serve.shutdown()
        ray.shutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
