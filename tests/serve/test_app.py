"""The ECR app on a real Ray Serve instance (127.0.0.1, free port), real HTTP, the demo recipe's artifacts."""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from ecr_ray.config import EMOTIONS
from tests.serve.conftest import TOKENS, bearer

DIALOGUE = [
    {"role": "user", "text": "Hi! I loved Titanic and I like romantic movies."},
    {"role": "recommender", "text": "Have you seen The Notebook?"},
    {"role": "user", "text": "Yes, it was great, it made me cry. Anything similar?"},
]


def post(url, path, body=None, *, data=None, headers=None, timeout=120):
    return requests.post(f"{url}{path}", json=body, data=data, headers=headers, timeout=timeout)


def assert_client_error(r: requests.Response, status: int, mentions: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert mentions.lower() in err["message"].lower(), err
    assert "Traceback" not in r.text


# ----------------------------------------------------------------------------- client mistakes → 4xx JSON


@pytest.mark.parametrize(
    "body,status,mentions",
    [
        ({"dialogue": []}, 400, "dialogue"),
        ({"dialogue": [{"role": "bot", "text": "hi"}]}, 400, "dialogue[0].role"),
        ({"dialogue": [{"role": "user", "text": ["hi"]}]}, 400, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": "hi"}], "top_k": "5"}, 400, "top_k"),
        ({"dialogue": [{"role": "user", "text": "hi"}], "top_k": 10_000}, 400, "top_k"),
        ({"dialogue": [{"role": "user", "text": "x" * 4001}]}, 400, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": "hi"}] * 51}, 400, "dialogue"),
        ({"dialogue": [{"role": "recommender", "text": "hi"}]}, 400, "user turn"),
        ({"dialog": [{"role": "user", "text": "hi"}]}, 400, "dialogue"),
        ([{"role": "user", "text": "hi"}], 400, "JSON object"),
    ],
)
def test_invalid_json_bodies(serve_url, body, status, mentions):
    assert_client_error(post(serve_url, "/v1/recommend", body), status, mentions)


@pytest.mark.parametrize(
    "data,headers,status,mentions",
    [
        (b'{"dialogue": [{"role": "user", "text": "caf\xe9"}]}', {}, 400, "UTF-8"),
        (b'{"dialogue": [', {}, 400, "not valid JSON"),
        (b"", {}, 400, "empty"),
        (b'{"dialogue": NaN}', {}, 400, "NaN"),
        (b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "Content-Type"),
        (b"[" * 100_000, {}, 400, "JSON"),
        (b'{"dialogue": [], "pad": "' + b"x" * 300_000 + b'"}', {}, 413, "limit"),
    ],
)
def test_malformed_bodies(serve_url, data, headers, status, mentions):
    headers = {"Content-Type": "application/json", **headers}
    assert_client_error(post(serve_url, "/v1/recommend", data=data, headers=headers), status, mentions)


def test_oversized_chunked_body_is_refused_without_content_length(serve_url):
    chunks = (b"x" * 65536 for _ in range(8))  # a generator → chunked transfer, no Content-Length
    r = requests.post(
        f"{serve_url}/v1/recommend", data=chunks, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert_client_error(r, 413, "limit")


def test_unknown_route_and_method(serve_url):
    assert_client_error(requests.get(f"{serve_url}/v1/nope", timeout=30), 404, "not found")
    assert_client_error(requests.get(f"{serve_url}/v1/recommend", timeout=30), 405, "not allowed")


# ----------------------------------------------------------------------------- the pipeline end to end


def test_recommend_end_to_end(serve_url):
    r = post(serve_url, "/v1/recommend", {"dialogue": DIALOGUE, "top_k": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["items"]) == 3
    assert all(isinstance(i["entity_id"], int) and i["name"] and 0 <= i["score"] <= 1 for i in out["items"])
    assert [i["score"] for i in out["items"]] == sorted((i["score"] for i in out["items"]), reverse=True)
    assert len(out["user_emotions"]) == 2  # one per user turn
    for emo in out["user_emotions"]:
        assert set(emo) == set(EMOTIONS) and all(0 <= p <= 1 for p in emo.values())
    resp = out["response"]
    assert out["items"][0]["name"] in resp["recommendation"] and "<movie>" not in resp["recommendation"]
    assert resp["recommendation_source"] in ("conversation", "template")  # the demo run has a conversation module
    assert resp["final"].startswith(resp["recommendation"].rstrip("."))
    guard = resp["guard"]  # the reply guard's verdict: what, if anything, it took out of u_e
    assert guard["checked"] and guard["trimmed"] == bool(guard["dropped"]) and guard["regenerations"] >= 0
    assert resp["empathetic"] or guard["trimmed"]
    expl = out["explanation"]
    assert isinstance(expl["entities"], list) and isinstance(expl["triples"], list)
    assert isinstance(expl["review_entities"], list)


def test_recommendation_only_skips_generation(serve_url):
    out = post(serve_url, "/v1/recommend", {"dialogue": DIALOGUE[:1], "top_k": 1, "generate": False}).json()
    assert len(out["items"]) == 1
    assert out["response"]["empathetic"] == "" and out["response"]["final"] == out["response"]["recommendation"]


def test_concurrent_requests_get_their_own_answers(serve_url):
    """Concurrent dialogues share Recommender/EmotionDetector batches (@serve.batch) and the per-text caches;
    each client must still get exactly the answer it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    dialogues = [
        DIALOGUE[:1],
        DIALOGUE,
        [{"role": "user", "text": "Any scary horror film with zombies?"}],
        [{"role": "user", "text": "Something funny for kids, like Toy Story"}],
        DIALOGUE[:1],
    ]
    bodies = [{"dialogue": d, "top_k": 4 + i % 3, "generate": False} for i, d in enumerate(dialogues)]
    alone = [post(serve_url, "/v1/recommend", b).json() for b in bodies]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(lambda b: post(serve_url, "/v1/recommend", b), bodies * 3))
    for i, r in enumerate(together):
        assert r.status_code == 200, r.text
        got, want = r.json(), alone[i % len(bodies)]
        assert [it["entity_id"] for it in got["items"]] == [it["entity_id"] for it in want["items"]]
        assert [it["score"] for it in got["items"]] == pytest.approx([it["score"] for it in want["items"]], abs=1e-5)
        assert got["user_emotions"] == want["user_emotions"]


def test_sessions_accumulate_turns(serve_url):
    created = post(serve_url, "/v1/sessions")
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    assert len(sid) == 24 and created.json()["max_turns"] > 0
    first = post(serve_url, "/v1/recommend", {"dialogue": DIALOGUE[:1], "session_id": sid, "generate": False}).json()
    assert first["turns"] == 1 and first["session_id"] == sid
    second = post(serve_url, "/v1/recommend", {"dialogue": [DIALOGUE[2]], "session_id": sid, "generate": False})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["turns"] == 3  # user, our reply, user
    assert len(second["user_emotions"]) == 2
    # The first turn's emotions are reused from the session, not recomputed differently.
    assert second["user_emotions"][0] == first["user_emotions"][0]
    # Ids are the server's: one a client makes up (or guesses) is not a session.
    for made_up in ("test-session-1", "1", "test"):
        body = {"dialogue": [DIALOGUE[2]], "session_id": made_up, "generate": False}
        assert_client_error(post(serve_url, "/v1/recommend", body), 404, "POST /v1/sessions")
    assert requests.delete(f"{serve_url}/v1/sessions/{sid}", timeout=30).status_code == 200
    assert_client_error(requests.delete(f"{serve_url}/v1/sessions/{sid}", timeout=30), 404, "not found")
    body = {"dialogue": [DIALOGUE[2]], "session_id": sid, "generate": False}
    assert_client_error(post(serve_url, "/v1/recommend", body), 404, "not found")  # ended: not recreated


def test_a_session_keeps_the_recommended_items_not_the_generated_text(serve_url, serve_cfg):
    """The recommender's context in a session is the user's words and the items the reply named: the generated text
    (u_e, and a generated u_r's other words) is in the answer, not in what the next request is ranked on."""
    import ray

    from ecr_ray.data.linker import EntityLinker
    from ecr_ray.data.tables import load_dataset_kg

    sid = post(serve_url, "/v1/sessions").json()["session_id"]
    out = post(serve_url, "/v1/recommend", {"dialogue": DIALOGUE[:1], "session_id": sid, "generate": True}).json()
    assert out["response"]["empathetic"] and out["response"]["final"] != out["response"]["recommendation"]
    store = ray.get_actor(f"sessions:{serve_cfg.with_absolute_paths().run_path}", namespace="ecr-ray")
    stored = ray.get(store.get.remote(sid))
    assert [t["role"] for t in stored.turns] == ["user", "recommender"]
    assert out["items"][0]["name"] in stored.turns[1]["text"]
    linker = EntityLinker.from_kg(load_dataset_kg(serve_cfg), include_items=True)
    recommended = {it["entity_id"] for it in out["items"]}
    assert set(linker.link_ids(stored.turns[1]["text"])) <= recommended  # nothing else the reply said


def test_sessions_are_bound_to_the_token_that_started_them(secure_url):
    """With auth on, another client's token cannot read, extend or end a session, even knowing its id."""
    a, b = bearer(TOKENS[0]), bearer(TOKENS[1])
    assert_client_error(post(secure_url, "/v1/sessions"), 401, "token")
    sid = post(secure_url, "/v1/sessions", headers=a).json()["session_id"]
    body = {"dialogue": DIALOGUE[:1], "session_id": sid, "generate": False}
    assert post(secure_url, "/v1/recommend", body, headers=a).status_code == 200
    assert_client_error(post(secure_url, "/v1/recommend", body, headers=b), 404, "not yours")
    assert_client_error(requests.delete(f"{secure_url}/v1/sessions/{sid}", headers=b, timeout=30), 404, "not found")
    again = post(secure_url, "/v1/recommend", {**body, "dialogue": [DIALOGUE[2]]}, headers=a).json()
    assert again["turns"] == 3  # b's attempts left the session as it was
    assert requests.delete(f"{secure_url}/v1/sessions/{sid}", headers=a, timeout=30).status_code == 200


def test_healthz_is_not_ready_while_a_model_deployment_cannot_answer(serve_url, serve_cfg):
    """An ingress whose Generator has no replica yet (it waits for a resource no node has, as a replica waits for its
    GPU node or its model) answers /healthz 503 naming the Generator, while /livez says the ingress is up."""
    from ray import serve

    from ecr_ray.serve.app import ECRIngress, Generator

    handles = [serve.get_deployment_handle(n, app_name="ecr") for n in ("EmotionDetector", "Recommender")]
    waiting = {"num_cpus": 0, "resources": {"node-type-not-in-this-cluster": 1}}
    generator = Generator.options(num_replicas=1, ray_actor_options=waiting).bind(serve_cfg)
    ingress = ECRIngress.options(ray_actor_options={"num_cpus": 0}).bind(serve_cfg, *handles, generator)
    serve._run(ingress, name="ecr-loading", route_prefix="/loading", _blocking=False)
    try:
        deadline = time.time() + 120
        while requests.get(f"{serve_url}/loading/livez", timeout=30).status_code != 200:
            assert time.time() < deadline, "the ingress of the loading app never came up"
            time.sleep(1)
        r = requests.get(f"{serve_url}/loading/healthz", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "unavailable" and r.json()["generator"] is False
        assert r.json()["emotion"] is True and r.json()["recommender"] is True
    finally:
        serve.delete("ecr-loading")


def test_health_and_models(serve_url):
    assert requests.get(f"{serve_url}/livez", timeout=30).json() == {"status": "ok"}
    ready = requests.get(f"{serve_url}/healthz", timeout=60)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok" and isinstance(ready.json()["sessions"], int)
    assert ready.json()["emotion"] and ready.json()["recommender"] and ready.json()["generator"]
    models = requests.get(f"{serve_url}/v1/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["ecr"]


def test_static_page_served(serve_url):
    r = requests.get(f"{serve_url}/", timeout=30)
    assert r.status_code == 200 and 'id="message"' in r.text
    assert requests.get(f"{serve_url}/static/app.js", timeout=30).status_code == 200


# ----------------------------------------------------------------------------- OpenAI compatibility


def test_openai_client(serve_url):
    """The official `openai` client against the running app: models, a completion with usage, a stream with its usage
    chunk, `finish_reason: length`, `stop`, and each error class the API documents."""
    client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == ["ecr"] and client.models.retrieve("ecr").id == "ecr"
    messages = [{"role": "user" if t["role"] == "user" else "assistant", "content": t["text"]} for t in DIALOGUE]
    done = client.chat.completions.create(model="ecr", messages=messages, max_tokens=8)
    reply, ecr = done.choices[0].message.content, done.model_extra["ecr"]
    assert reply == ecr["response"]["final"] and done.choices[0].finish_reason in ("stop", "length")
    u = done.usage  # the tokens the conversation module and the generator read and wrote
    assert u.prompt_tokens > 0 and u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert ecr["usage"] == u.model_dump(exclude_none=True)

    cut = client.chat.completions.create(model="ecr", messages=messages, max_tokens=1)
    assert cut.choices[0].finish_reason == "length"  # u_e cut at max_tokens

    first_item = ecr["items"][0]["name"]  # u_r names it: a stop sequence there ends the reply before it
    stopped = client.chat.completions.create(model="ecr", messages=messages, max_tokens=8, stop=[first_item])
    ur = ecr["response"]["recommendation"]
    assert stopped.choices[0].message.content == ur[: ur.index(first_item)]
    assert stopped.choices[0].finish_reason == "stop"

    chunks = list(
        client.chat.completions.create(
            model="ecr", messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    streamed = "".join(pieces)
    assert len(pieces) >= 3 and streamed.strip()
    assert streamed.startswith(ur)  # the stream opens with the recommendation sentence, as soon as it exists
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0  # then the usage, as OpenAI sends it
    assert all(c.usage is None for c in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=messages)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="ecr", messages=[{"role": "system", "content": "only a system"}])
    with pytest.raises(openai.BadRequestError, match="tools"):
        client.chat.completions.create(
            model="ecr", messages=messages, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    with pytest.raises(openai.BadRequestError, match="unrecognized"):
        client.chat.completions.create(model="ecr", messages=messages, extra_body={"top_k": 3})
    # AuthenticationError: test_bearer_token_auth (an ingress with tokens); 413 APIStatusError: test_hostile.py


def test_sse_wire_format(serve_url):
    body = {"model": "ecr", "stream": True, "max_tokens": 4, "messages": [{"role": "user", "content": "I like Alien"}]}
    with requests.post(f"{serve_url}/v1/chat/completions", json=body, stream=True, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines(decode_unicode=True) if ln]
    assert all(ln.startswith("data: ") for ln in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and chunks[-1]["ecr"]["items"]
    assert chunks[-1]["ecr"]["guard"]["checked"]  # streamed sentence by sentence through the reply guard
    assert "usage" not in chunks[-1]  # only with stream_options.include_usage
    assert chunks[-1]["ecr"]["recommendation_source"] in ("conversation", "template")


# ----------------------------------------------------------------------------- bearer-token auth


def test_bearer_token_auth(serve_url, secure_url):
    """The second ingress (two tokens in its environment, tests/serve/conftest.py) in front of the same models."""
    body = {"dialogue": DIALOGUE[:1], "generate": False}
    assert_client_error(post(secure_url, "/v1/recommend", body), 401, "bearer token")
    assert_client_error(post(secure_url, "/v1/recommend", body, headers=bearer("wrong")), 401, "token")
    assert_client_error(post(secure_url, "/v1/recommend", body, headers=bearer(TOKENS[0] + "x")), 401, "token")
    assert_client_error(requests.get(f"{secure_url}/v1/models", timeout=30), 401, "token")
    for token in TOKENS:
        ok = post(secure_url, "/v1/recommend", body, headers=bearer(token))
        assert ok.status_code == 200 and ok.json()["items"]
    assert requests.get(f"{secure_url}/healthz", timeout=30).status_code == 200  # probes need no token
    client = openai.OpenAI(base_url=f"{secure_url}/v1", api_key=TOKENS[1], max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == ["ecr"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{secure_url}/v1", api_key="nope", max_retries=0).models.list()
    # The unauthenticated app is unaffected.
    assert post(serve_url, "/v1/recommend", body).status_code == 200


# ----------------------------------------------------------------------------- evaluation sees what Serve answers


def test_evaluate_generator_scores_the_reply_as_served(serve_url, serve_run_dir, tmp_path):
    """`evaluate_generator` (a job in its own Ray instance, as a user runs it) on the serve run evaluates the reply
    that POST /v1/recommend answers for the same contexts and settings (`top_k` included): the same item, u_r (its
    source) and final reply; the dataset's turn only as the `standard` reference row. Batches of one on both sides
    (a batch's padding would be the only difference)."""
    import os
    import subprocess
    import sys

    from ecr_ray.config import PROJECT_ROOT
    from ecr_ray.prompts import as_dialogue
    from tests.serve.conftest import _overrides

    out, top_k, tokens = tmp_path / "eval", 2, 8
    cmd = [sys.executable, "-m", "ecr_ray.jobs.evaluate_generator", *_overrides(serve_run_dir), "--models", "finetuned"]
    cmd += ["--generator.eval_samples", "4", "--generator.max_new_tokens", str(tokens), "--out", str(out)]
    cmd += ["--generator.eval_batch_size", "1", "--top-k", str(top_k)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    p = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["mode"] == "served" and sum(report["recommendation_source"].values()) == 4
    assert set(report["recommendation_source"]) <= {"conversation", "template"}
    assert {"finetuned", "finetuned_unguarded", "standard"} <= set(report["metrics"]["all"])
    rows = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert all(r["item"] >= 0 and r["gold_item"] >= 0 and r["standard"] and r["finetuned"] for r in rows)
    assert "The reply as served" in (out / "report.md").read_text()
    for r in rows:
        body = {"dialogue": as_dialogue(r["context"]), "top_k": top_k, "generate": True, "max_new_tokens": tokens}
        served = post(serve_url, "/v1/recommend", body).json()
        assert len(served["items"]) == top_k and r["item"] == served["items"][0]["entity_id"]
        assert r["recommendation"] == served["response"]["recommendation"]
        assert r["recommendation_source"] == served["response"]["recommendation_source"]
        assert r["finetuned"] == served["response"]["final"]
