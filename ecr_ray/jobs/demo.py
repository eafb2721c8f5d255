"""The main job on the embedded defaults: the whole pipeline on the demo recipe, then one dialogue over HTTP.

ecr-ray demo                  # pipeline (skips finished stages) → serve on 127.0.0.1 → POST /v1/recommend
ecr-ray demo --keep-serving   # ... and keep the app up for the web chat at http://127.0.0.1:<port>/
"""

from __future__ import annotations

import json
import socket
import sys
import time

from ecr_ray.pipeline import pending, run_pipeline

from ._common import parse, ray_for
from .cli import run_job
from .pipeline import run_stage_job

DIALOGUE = [
    {"role": "user", "text": "Hi! I loved The Conjuring, it scared me so much. Any horror movie like that?"},
    {"role": "recommender", "text": "Did you see Insidious? Also by James Wan."},
    {"role": "user", "text": "Yes, and I really liked it! Something new please, maybe with Patrick Wilson."},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(url: str, payload: dict, timeout: float = 300) -> dict:
    """POST JSON; retried while the proxy still answers 404/503 (Serve needs seconds to route a new app)."""
    import requests

    deadline = time.time() + timeout
    while True:
        r = requests.post(url, json=payload, timeout=timeout)
        if r.status_code not in (404, 503) or time.time() > deadline:
            r.raise_for_status()
            return r.json()
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep = "--keep-serving" in argv
    argv = [a for a in argv if a != "--keep-serving"]
    if not any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        argv = ["--recipe", "demo", *argv]
    cfg, args = parse(__doc__.splitlines()[0], argv)
    from ray import serve

    from ecr_ray.serve.app import build_app

    port = _free_port()
    jobs = tuple(j for step in pending(cfg) for j in step.jobs)
    with ray_for(args, cfg, (*jobs, "serve"), ["ecr"]):  # one Ray instance for the pipeline and the app
        t0 = time.perf_counter()
        run_pipeline(cfg, argv, run_stage_job)
        print(f"[demo] pipeline done in {time.perf_counter() - t0:.0f} s; starting the app", flush=True)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            serve.run(build_app(cfg), name="ecr", route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            payload = {"dialogue": DIALOGUE, "top_k": 5}
            print(f"[demo] curl -s {url}/v1/recommend -H 'Content-Type: application/json' -d '{json.dumps(payload)}'")
            reply = ask(f"{url}/v1/recommend", payload)
            print(json.dumps(reply, indent=2))
            print("\nRecommended:", ", ".join(i["name"] for i in reply["items"]))
            print("Reply:", reply["response"]["final"])
            if keep:
                print(f"[demo] web chat at {url}/ — Ctrl-C stops", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.delete("ecr")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
