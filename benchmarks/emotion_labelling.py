"""Emotion-labelling throughput, same machine, same run (run under `flock /tmp/ecr-heavy.lock`).

1. Classifier labelling of every user turn: Ray Data `map_batches` over an actor pool vs a plain sequential loop
   (one process; torch with 1 thread and with all threads). Needs tables + a trained classifier in --run-dir
   (`ecr-ray train_emotion --recipe cpu`).
2. LLM labelling against an OpenAI-compatible endpoint with added latency: a tiny local server started here
   (127.0.0.1, fixed --delay-s per request, canned answer), driven through the job's own path
   (Ray Data + LLMLabeler writing shards) at concurrency 1 / 4 / 16.

    python benchmarks/emotion_labelling.py --run-dir /tmp/emo/cpu [--limit 0] [--delay-s 0.25 --requests 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from ecr_ray.data.tables import read_table  # noqa: E402


def classifier_benchmark(run_dir: Path, limit: int, actors: int, batch_size: int) -> dict:
    """The job's own Ray Data path (`ecr_ray.emotion.predictor.label_turns`) vs `EmotionPredictor.predict` in a plain
    loop, on the same turns, the same sorted-by-length batching, in one process run."""
    import ray
    import torch

    from ecr_ray.config import load_config
    from ecr_ray.emotion.predictor import EmotionPredictor, label_turns

    model = run_dir / "emotions" / "classifier" / "model"
    turns = read_table(run_dir, "turns")
    users = turns.filter(pc.equal(turns["role"], "user"))
    users = users.slice(0, limit) if limit else users
    texts = users["text"].to_pylist()
    out: dict = {"turns": len(texts), "batch_size": batch_size}

    default_threads = torch.get_num_threads()
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        pred = EmotionPredictor.from_dir(model, batch_size=batch_size)
        t0 = time.perf_counter()
        seq = pred.predict(texts)
        out[f"sequential_{threads}thread_s"] = round(time.perf_counter() - t0, 2)
    torch.set_num_threads(default_threads)

    cfg = load_config(
        "cpu",
        {
            "run_dir": str(run_dir),
            "emotion.label_resources": {"workers": actors},
            "emotion.label_batch_size": batch_size,
        },
    )
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        probs = np.array(label_turns(cfg, users, model)["probs"].to_pylist(), dtype=np.float32)
        t_ray = time.perf_counter() - t1
    finally:
        ray.shutdown()
    out |= {
        "ray_data_actors": actors,
        "ray_init_s": round(t_init, 2),
        "ray_data_s": round(t_ray, 2),
        "max_abs_diff_vs_sequential": float(np.abs(probs - seq).max()),
    }
    for threads in sorted({1, default_threads}):
        s = out[f"sequential_{threads}thread_s"]
        out[f"ratio_vs_sequential_{threads}thread"] = round(s / t_ray, 2)
        out[f"ratio_vs_sequential_{threads}thread_incl_ray_init"] = round(s / (t_ray + t_init), 2)
    out["turns_per_s"] = {
        "ray_data": round(len(texts) / t_ray, 1),
        **{
            f"sequential_{t}thread": round(len(texts) / out[f"sequential_{t}thread_s"], 1)
            for t in sorted({1, default_threads})
        },
    }
    return out


class SlowServer:
    """A minimal OpenAI-compatible chat endpoint that sleeps `delay` per request (an LLM API's latency)."""

    def __init__(self, delay: float):
        answer = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "slow",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "curious, interest; asks"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126},
            }
        ).encode()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        ThreadingHTTPServer.daemon_threads = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def llm_benchmark(delay: float, requests: int, levels: list[int]) -> dict:
    import ray

    from ecr_ray.labelling.data import read_shards
    from ecr_ray.labelling.predictor import LLMLabeler

    rows = [
        {
            "turn_id": f"c{i}:{i}",
            "conversation_id": f"c{i}",
            "split": "train",
            "turn_index": i,
            "utterance": "Have you seen anything good lately?",
            "history": json.dumps([["recommender", "Hi!"]]),
        }
        for i in range(requests)
    ]
    server = SlowServer(delay)
    out: dict = {"delay_s": delay, "requests": requests, "ideal_s_at_concurrency_1": round(delay * requests, 2)}
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        for c in levels:
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                ds = ray.data.from_items(rows).map_batches(
                    LLMLabeler,
                    fn_constructor_kwargs={
                        "base_url": server.url,
                        "model": "slow",
                        "out_dir": d,
                        "client_kwargs": {"concurrency": c, "max_retries": 0},
                    },
                    batch_size=max(c, 1),
                    compute=ray.data.ActorPoolStrategy(size=1),
                    num_cpus=0.1,
                )
                n = sum(len(b["turn_id"]) for b in ds.iter_batches(batch_size=None))
                dt = time.perf_counter() - t0
                done = read_shards(Path(d))
                assert n == requests == len(done) and set(done["status"].to_pylist()) == {"ok"}
            out[f"concurrency_{c}"] = {"seconds": round(dt, 2), "turns_per_s": round(requests / dt, 2)}
    finally:
        ray.shutdown()
        server.close()
    base = out[f"concurrency_{levels[0]}"]["turns_per_s"]
    for c in levels:
        out[f"concurrency_{c}"]["speedup"] = round(out[f"concurrency_{c}"]["turns_per_s"] / base, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default="runs/cpu", help="run dir with tables + trained classifier")
    p.add_argument("--limit", type=int, default=0, help="label at most this many user turns (0 = all)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--delay-s", type=float, default=0.25, help="added latency per LLM request")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--skip", choices=["classifier", "llm"], action="append", default=[])
    p.add_argument("--out", help="write the JSON here too")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res: dict = {"cpus": os.cpu_count()}
    if "classifier" not in a.skip:
        res["classifier"] = classifier_benchmark(Path(a.run_dir).resolve(), a.limit, a.actors, a.batch_size)
        print(json.dumps(res["classifier"], indent=2), flush=True)
    if "llm" not in a.skip:
        res["llm"] = llm_benchmark(a.delay_s, a.requests, [1, 4, 16])
        print(json.dumps(res["llm"], indent=2), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
