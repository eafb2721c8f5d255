"""What the reply guard costs a served reply, guard off and on side by side in one run.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/reply_guard.py --run-dir R [--contexts 20] [--recipe cpu]
    ... --http-only        # only the served stream (the second table)

1. The generator alone (this process, batch 1, as a chat user waits for it): seconds per reply (`respond`:
   generation, the check, another try when the guard left nothing), the stream's time to its first u_e text (token
   chunks without the guard, the first checked sentence with it) and to its end; the guard's own check time per
   reply; how many replies needed another try.
2. The served stream, as a client sees it: `POST /v1/chat/completions` with `stream: true` on a real Ray Serve
   instance (127.0.0.1), two ingresses in front of the same EmotionDetector and Recommender replicas, one with a
   Generator whose guard is on, one with it off, asked alternately with the same dialogues (ReDial test contexts of
   the run). Time to the first text (u_r, sent as soon as it exists), to the first text of u_e, and to the end.
   Goal: first text with the guard ≤ 1.2× without.

The recipe's decoding settings.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecr_ray.config import load_config, parse_overrides  # noqa: E402


def generator_rows(cfg, contexts) -> list[tuple]:
    from ecr_ray.generator.predictor import GeneratorPredictor

    pred = GeneratorPredictor.load(cfg)
    guard = pred.guard
    rows = []
    for setting in ("off", "on"):
        pred.guard = guard if setting == "on" else None
        reply_s, first_s, stream_s, check_ms, retries = [], [], [], [], 0
        for i, c in enumerate(contexts):
            req = (c["target_item"], c["response"])
            t0 = time.perf_counter()
            answer = pred.respond(*req, seed=i)
            reply_s.append(time.perf_counter() - t0)
            retries += answer["guard"].get("regenerations", 0)
            if setting == "on":
                t0 = time.perf_counter()
                guard.check(req[0], answer["generated"])
                check_ms.append(1000 * (time.perf_counter() - t0))
            t0, first = time.perf_counter(), None
            for piece in pred.stream(*req, seed=i):
                if isinstance(piece, str) and piece.strip() and first is None:
                    first = time.perf_counter() - t0
            stream_s.append(time.perf_counter() - t0)
            first_s.append(first if first is not None else stream_s[-1])
        med = statistics.median
        ms = statistics.mean(check_ms) if check_ms else float("nan")
        rows.append((setting, med(reply_s), max(reply_s), med(first_s), med(stream_s), ms, retries))
    return rows


def stream_times(url: str, messages: list[dict], max_tokens: int) -> tuple[float, float, float]:
    """(first text, first text after u_r, end) of one streamed chat completion, in seconds from the request."""
    import requests

    body = {"model": "ecr", "stream": True, "max_tokens": max_tokens, "messages": messages}
    t0 = time.perf_counter()
    first = first_ue = None
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            text = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
            if text and text.strip():
                now = time.perf_counter() - t0
                if first is None:
                    first = now  # u_r
                elif first_ue is None:
                    first_ue = now
    end = time.perf_counter() - t0
    return first or end, first_ue or end, end


def http_rows(cfg, off, contexts) -> list[tuple]:
    """Table 2: `cfg` (guard on) and `off` (the same config, guard off) served side by side."""
    import ray
    from ray import serve

    from ecr_ray.prompts import as_dialogue
    from ecr_ray.serve.app import ECRIngress, Generator, build_app

    on, off = cfg.with_absolute_paths(), off.with_absolute_paths()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(on), name="guard-on", route_prefix="/on")
        handles = [serve.get_deployment_handle(n, app_name="guard-on") for n in ("EmotionDetector", "Recommender")]
        zero = {"ray_actor_options": {"num_cpus": 0}}
        gen_off = Generator.options(**zero).bind(off)
        serve.run(ECRIngress.options(**zero).bind(off, *handles, gen_off), name="guard-off", route_prefix="/off")
        base = f"http://127.0.0.1:{port}"
        dialogues = [
            [{"role": "user" if t["role"] == "user" else "assistant", "content": t["text"]} for t in as_dialogue(lines)]
            for lines in (c["context"] for c in contexts)
        ]
        for setting in ("on", "off"):  # warm-up: both paths answered once (the proxy routes new apps after a while)
            deadline = time.time() + 120
            while True:
                try:
                    stream_times(f"{base}/{setting}", dialogues[0], cfg.generator.max_new_tokens)
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(1)
        times: dict[str, list] = {"on": [], "off": []}
        for i, messages in enumerate(dialogues):
            for setting in ("on", "off") if i % 2 == 0 else ("off", "on"):  # alternate which goes first
                times[setting].append(stream_times(f"{base}/{setting}", messages, cfg.generator.max_new_tokens))
        rows = []
        for setting in ("off", "on"):
            first, first_ue, end = (statistics.median(x) for x in zip(*times[setting]))
            rows.append((setting, first, first_ue, end, len(times[setting])))
        return rows
    finally:
        serve.shutdown()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--contexts", type=int, default=20)
    ap.add_argument("--http-only", action="store_true", help="only the served stream (table 2)")
    args, rest = ap.parse_known_args(argv)
    over = {"run_dir": args.run_dir, **parse_overrides(rest)}
    cfg = load_config(args.recipe, {**over, "generator.reply_guard": True})
    off = load_config(args.recipe, {**over, "generator.reply_guard": False})

    from ecr_ray.generator.evaluate import test_contexts

    contexts = test_contexts(cfg.run_path / "tables" / "samples.parquet", args.contexts, cfg.seed)
    print(
        f"{len(contexts)} contexts, batch 1, {cfg.generator.max_new_tokens} new tokens, do_sample "
        f"{cfg.generator.do_sample}, knowledge_bonus {cfg.generator.knowledge_bonus}"
    )
    if not args.http_only:
        print("\nThe generator alone (the dataset's item and recommender turn):\n")
        print(
            "| guard | reply s (median / max) | stream: first u_e text s (median) | stream: end s (median) | ", end=""
        )
        print("check ms | another try |\n|---|---|---|---|---|---|")
        for name, med, mx, first, end, ms, n in generator_rows(cfg, contexts):
            print(f"| {name} | {med:.2f} / {mx:.2f} | {first:.2f} | {end:.2f} | {ms:.2f} | {n} |")
    rows = http_rows(cfg, off, contexts)
    print("\nThe served stream (POST /v1/chat/completions, stream: true; the recommender's item, u_r, u_e):\n")
    print("| guard | requests | first text s (u_r; median) | first u_e text s (median) | end s (median) |")
    print("|---|---|---|---|---|")
    for name, first, first_ue, end, n in rows:
        print(f"| {name} | {n} | {first:.2f} | {first_ue:.2f} | {end:.2f} |")
    (off_first, on_first) = rows[0][1], rows[1][1]
    print(f"\nfirst text, guard on / off: {on_first / off_first:.2f}x (goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
