"""The main job on the embedded defaults: the whole pipeline on the demo recipe, then one dialogue over HTTP.

ecr-ray demo                  # pipeline (skips finished stages) → serve on 127.0.0.1 → POST /v1/recommend
ecr-ray demo --json           # ... and print the whole JSON answer instead of the reply as a person reads it
ecr-ray demo --keep-serving   # ... and keep the app up for the web chat at http://127.0.0.1:<port>/
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import time

from ecr_ray.pipeline import pending, run_pipeline
from ecr_ray.serve.app import build_app

from ._common import parse, ray_for
from .cli import run_job
from .pipeline import run_stage_job

DIALOGUE = [{"role": "user", "text": "I loved The Conjuring. Any scary movie like that?"}]
"""README's example."""


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


def _why(dropped: dict, item: str) -> str:
    """Why the guard dropped a sentence (its `reason`s: ecr_ray/generator/guard.py), in words."""
    if dropped["reason"] == "unlinked_entity":
        return f"names {', '.join(dropped['entities'])}, not linked to {item}"
    if dropped["reason"] == "viewing_claim":
        return "claims a viewing of its own"
    if dropped["reason"] == "repeats":
        return "says again what the reply already said"
    return dropped["reason"]


def readable(dialogue: list[dict], answer: dict, width: int = 100) -> str:
    """The answer as a person reads it: the dialogue, the recommended movies, the reply, what the reply guard took
    out of it, and the emotions read in the user's turns."""

    def wrap(text: str, indent: str) -> str:
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=" " * len(indent))

    lines = [wrap(t["text"], f"{t['role']:>11}: ") for t in dialogue]
    resp = answer["response"]
    lines += [wrap(resp["final"], "recommender: "), ""]
    items = answer["items"]
    lines.append("recommended: " + ", ".join(f"{i + 1}. {it['name']}" for i, it in enumerate(items)))
    emotions = answer["user_emotions"][-1] if answer["user_emotions"] else {}
    top = sorted(emotions.items(), key=lambda kv: -kv[1])[:3]
    lines.append("user's emotions (last turn): " + ", ".join(f"{e} {p:.2f}" for e, p in top))
    lines.append(f"u_r (recommendation sentence) from: {resp['recommendation_source']}")
    guard = resp.get("guard", {})
    dropped = guard.get("dropped", [])
    if not guard.get("checked"):
        lines.append("reply guard: off")
    elif not dropped:
        lines.append("reply guard: nothing removed")
    else:
        lines.append(
            f"reply guard removed {len(dropped)} sentence(s) (regenerations: {guard.get('regenerations', 0)}):"
        )
        for d in dropped:
            lines.append(wrap(f"{d['sentence']!r} ({_why(d, items[0]['name'])})", "  - "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep, as_json = "--keep-serving" in argv, "--json" in argv
    argv = [a for a in argv if a not in ("--keep-serving", "--json")]
    if not any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        argv = ["--recipe", "demo", *argv]
    cfg, args = parse(__doc__.splitlines()[0], argv)
    from ray import serve

    port = _free_port()
    jobs = tuple(j for step in pending(cfg) for j in step.jobs)
    with ray_for(args, cfg, (*jobs, "serve"), ["ecr"]):  # one Ray instance for the pipeline and the app
        t0 = time.perf_counter()
        run_pipeline(cfg, argv, run_stage_job, log_dir=cfg.run_path / "logs")  # a line per stage here
        print(f"[demo] pipeline done in {time.perf_counter() - t0:.0f} s; starting the app", flush=True)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            serve.run(build_app(cfg), name="ecr", route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            payload = {"dialogue": DIALOGUE, "top_k": 5}
            print(f"[demo] curl -s {url}/v1/recommend -H 'Content-Type: application/json' -d '{json.dumps(payload)}'")
            reply = ask(f"{url}/v1/recommend", payload)
            print(json.dumps(reply, indent=2) if as_json else "\n" + readable(DIALOGUE, reply) + "\n", flush=True)
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
