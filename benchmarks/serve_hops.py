"""Where a recommendation request's time goes on Ray Serve (127.0.0.1, one client, medians): the HTTP path alone
(GET /livez), three handle calls and the session store behind it (GET /healthz), a recommendation whose turns are
all cached, one with a new user turn, the handle calls to EmotionDetector / Recommender made directly from this
driver, and the model work alone (the same predictors in this process, one thread, before Ray starts).

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/serve_hops.py --run-dir runs/test-serve
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 flock ...   # Ray Serve's optional data path (gRPC handles, direct ingress)
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def in_process_rows(cfg, ms) -> list[tuple[str, float]]:
    """The model work alone: the serving predictors in this process, one torch thread (as in a replica), no Serve."""
    import torch

    from ecr_ray.emotion.predictor import EmotionPredictor
    from ecr_ray.hub import inference_dtype
    from ecr_ray.recommender.predictor import RecommenderPredictor
    from ecr_ray.text_cache import TextCache

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = RecommenderPredictor.load(
            cfg, cache_size=cfg.serve.text_cache_size, encoder_dtype=cfg.serve.encoder_dtype
        )
        emo = EmotionPredictor.load(cfg, dtype=inference_dtype(cfg.serve.encoder_dtype))
        probs = TextCache(emo.predict, cfg.serve.text_cache_size)
        dialogue = [{"role": "user", "text": "I loved Titanic and romantic movies."}]
        cached = probs([dialogue[0]["text"]])[0]
        fresh = itertools.count()

        def new_text() -> str:
            return f"Something like it from {1950 + next(fresh)}, please."

        return [
            ("in-process: rank a cached dialogue", ms(lambda: rec.recommend(dialogue, [cached], 10))),
            (
                "in-process: encode one new user turn",
                ms(lambda: rec.encode_dialogue([*dialogue, {"role": "user", "text": new_text()}])),
            ),
            ("in-process: classify one new user turn", ms(lambda: probs([new_text()]))),
        ]
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    import ray
    import requests
    from ray import serve

    from ecr_ray.config import load_config
    from ecr_ray.serve.app import build_app

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="demo")
    ap.add_argument("--run-dir", required=True, help="a run directory with all stages' artifacts")
    ap.add_argument("--repeats", type=int, default=40)
    a = ap.parse_args()
    cfg = load_config(a.recipe, {"run_dir": a.run_dir})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url, http = f"http://127.0.0.1:{port}", requests.Session()

    def ms(f) -> float:
        f()
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times) * 1000, 1)

    model_rows = in_process_rows(cfg, ms)  # before Ray starts: nothing else competes for the cores
    throughput_optimized = os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0") == "1"
    print(f"RAY_SERVE_THROUGHPUT_OPTIMIZED={int(throughput_optimized)}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(cfg), name="ecr", route_prefix="/")
        dialogue = [{"role": "user", "text": "I loved Titanic and romantic movies."}]
        body = {"dialogue": dialogue, "generate": False}
        fresh = itertools.count()

        def new_turn():  # a user turn no cache has seen: both encoders run, as for a chat's newest message
            turns = [*dialogue, {"role": "user", "text": f"Something like it from {1950 + next(fresh)}, please."}]
            return http.post(f"{url}/v1/recommend", json={"dialogue": turns, "generate": False})

        rows = [
            ("GET /livez (HTTP → proxy → ingress)", ms(lambda: http.get(f"{url}/livez"))),
            ("GET /healthz (+3 handle calls, 1 actor call)", ms(lambda: http.get(f"{url}/healthz"))),
            ("POST /v1/recommend, all turns cached", ms(lambda: http.post(f"{url}/v1/recommend", json=body))),
            ("POST /v1/recommend, one new user turn", ms(new_turn)),
        ]
        if not throughput_optimized:  # that mode's handles only work inside an event loop
            emotion = serve.get_deployment_handle("EmotionDetector", "ecr")
            recommender = serve.get_deployment_handle("Recommender", "ecr")
            probs = emotion.predict.remote([dialogue[0]["text"]]).result()
            rows += [
                (
                    "handle: EmotionDetector.predict, cached",
                    ms(lambda: emotion.predict.remote([dialogue[0]["text"]]).result()),
                ),
                (
                    "handle: Recommender.recommend, cached",
                    ms(lambda: recommender.recommend.remote(dialogue, probs, 10).result()),
                ),
                ("handle: Recommender.ready (empty call)", ms(lambda: recommender.ready.remote().result())),
            ]
        rows += model_rows
        print("| call | p50 ms |\n|---|---|")
        for name, v in rows:
            print(f"| {name} | {v} |", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
