"""Losing a model replica under load (real Ray Serve on 127.0.0.1, replicas killed with `ray.kill`): with two
Recommender replicas no request fails or stalls, and a streamed answer whose Generator replica died before its first
token is retried and ends with [DONE]. An app of its own (`ecr-two`, at /two) so the shared one is not disturbed."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

BODY = {"dialogue": [{"role": "user", "text": "I loved Titanic, what else?"}], "generate": False}


@pytest.fixture(scope="module")
def two_url(serve_url, serve_cfg):
    from ray import serve

    from ecr_ray.serve.app import ECRIngress, Generator, Recommender

    emotion = serve.get_deployment_handle("EmotionDetector", app_name="ecr")
    free = {"num_cpus": 0}
    recommender = Recommender.options(num_replicas=2, ray_actor_options=free).bind(serve_cfg, emotion)
    generator = Generator.options(num_replicas=1, ray_actor_options=free).bind(serve_cfg)
    ingress = ECRIngress.options(ray_actor_options=free).bind(serve_cfg, emotion, recommender, generator)
    serve.run(ingress, name="ecr-two", route_prefix="/two")
    yield f"{serve_url}/two"
    serve.delete("ecr-two")


def replicas(deployment: str) -> list[str]:
    """Names of the live replica actors of `deployment` in app ecr-two."""
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and f"ecr-two#{deployment}#" in a["name"]
    )


def kill(name: str) -> None:
    import ray

    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)  # Serve starts a replacement


def test_a_recommender_replica_lost_under_load_fails_no_request(two_url):
    assert len(replicas("Recommender")) == 2
    results, stop = [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                status = requests.post(f"{two_url}/v1/recommend", json=BODY, timeout=120).status_code
            except requests.RequestException as e:
                status = type(e).__name__
            results.append((status, time.monotonic() - t0))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    before = len(results)
    kill(replicas("Recommender")[0])
    time.sleep(12)
    stop.set()
    for t in threads:
        t.join(130)
    after = results[before:]
    lat = sorted(s for _, s in after)
    print(
        f"\nrecommender replica killed: {len(after)} requests after the kill, "
        f"{sum(c == 200 for c, _ in after)} × 200, p50 {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1]:.2f} s"
    )
    assert after and all(c == 200 for c, _ in results), [c for c, _ in results if c != 200]
    assert lat[-1] < 10, lat[-5:]  # one replica alone stalled ~26-29 s


def test_a_stream_whose_generator_died_before_its_first_token_is_retried(two_url):
    (name,) = replicas("Generator")
    kill(name)  # the ingress's router may still pick the dead replica: the stream's first call then fails
    messages = [{"role": "user", "content": "I loved Titanic"}]
    body = {"model": "ecr", "stream": True, "max_tokens": 8, "messages": messages}
    with requests.post(f"{two_url}/v1/chat/completions", json=body, stream=True, timeout=180) as r:
        assert r.status_code == 200
        events = [ln[6:] for ln in r.iter_lines(decode_unicode=True) if ln.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c], chunks
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")  # how the reply ended (8 tokens), no error
    assert len("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)) > 0
