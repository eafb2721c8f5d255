"""The base-model endpoint (/llm, ecr_ray/llm_server.py) behind the ingress's guards, on the real service: bearer auth,
the body reader's limits, message/character/token limits from the recipe, and OpenAI-shaped errors."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
import requests

from ecr_ray.api import CSP
from tests.serve.conftest import LIMITS, bearer
from tests.serve.httpraw import connect, send_quietly, status_of

TOKEN = "llm-token-0123456789"
MODEL = "smollm2-135m-instruct"
MSG = [{"role": "user", "content": "Name one movie genre."}]


@pytest.fixture(scope="module")
def llm_url(serve_url, serve_cfg):
    """The /llm application (its ChatModel with a token in its environment) on the test's Serve instance."""
    from ray import serve

    from ecr_ray.llm_server import ChatModel

    env = {serve_cfg.serve.api_token_env: TOKEN}
    app = ChatModel.options(ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}}).bind(
        serve_cfg.with_absolute_paths()
    )
    serve.run(app, name="llm-test", route_prefix="/llm-test")
    yield f"{serve_url}/llm-test/v1"
    serve.delete("llm-test")


def chat(url, body=None, *, data=None, token=TOKEN, headers=None):
    h = {**(bearer(token) if token else {}), **(headers or {})}
    return requests.post(f"{url}/chat/completions", json=body, data=data, headers=h, timeout=120)


def assert_error(r: requests.Response, status: int, code: str, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]  # OpenAI's shape, as the ECR ingress answers
    assert err["code"] == code and (param is None or err["param"] == param), err
    assert "Traceback" not in r.text


def test_a_request_with_the_token_is_answered(llm_url):
    client = openai.OpenAI(base_url=llm_url, api_key=TOKEN, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == [MODEL]
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, temperature=0)
    assert r.choices[0].message.content and r.usage.completion_tokens <= 4
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, temperature=0, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_the_openai_api_as_its_clients_expect_it(llm_url):
    """The same request as the ECR endpoint's: developer messages and text parts, usage, finish_reason `length`
    when max_tokens cut the reply, `stop`, a usage chunk in streams with include_usage, 400 for what it lacks."""
    client = openai.OpenAI(base_url=llm_url, api_key=TOKEN, max_retries=0, timeout=120)
    assert client.models.retrieve(MODEL).id == MODEL
    messages = [
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "Name one movie "}, {"type": "text", "text": "genre."}]},
    ]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2
    assert r.usage.total_tokens == r.usage.prompt_tokens + 2 and r.usage.prompt_tokens > 10
    full = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    word = text.split()[1] if len(text.split()) > 1 else text[1:]
    stopped = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0, stop=[word])
    assert stopped.choices[0].message.content == text[: text.index(word)]
    assert stopped.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MSG, max_tokens=3, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    seeded = [
        client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8, temperature=1.0, seed=s) for s in (7, 7)
    ]
    assert seeded[0].choices[0].message.content == seeded[1].choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.chat.completions.create(model=MODEL, messages=MSG, logprobs=True)
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=llm_url, api_key="wrong", max_retries=0).models.list()


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_no_or_wrong_token_is_401(llm_url, token):
    assert_error(chat(llm_url, {"messages": MSG}, token=token), 401, "invalid_api_key")
    headers = bearer(token) if token else {}
    assert_error(requests.get(f"{llm_url}/models", headers=headers, timeout=30), 401, "invalid_api_key")


@pytest.mark.parametrize(
    "body,status,code,param",
    [
        ({"messages": MSG * 33}, 400, "invalid_value", "messages"),  # serve.llm_max_messages = 32
        ({"messages": [{"role": "user", "content": "x" * 16001}]}, 400, "invalid_value", "messages[0].content"),
        ({"messages": MSG, "max_tokens": 257}, 400, "invalid_value", "max_tokens"),  # serve.llm_max_tokens = 256
        ({"messages": MSG, "max_completion_tokens": 1024}, 400, "invalid_value", "max_completion_tokens"),
        ({"messages": []}, 400, "invalid_value", "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "invalid_value", "messages[0].role"),
        ({"messages": MSG, "temperature": 3}, 400, "invalid_value", "temperature"),
        ({"model": "gpt-9", "messages": MSG}, 404, "model_not_found", "model"),
    ],
)
def test_limits_name_the_field(llm_url, body, status, code, param):
    assert_error(chat(llm_url, body), status, code, param)


@pytest.mark.parametrize(
    "data,headers,status,code",
    [
        (b'{"messages": [', {}, 400, "invalid_json"),
        (b"", {}, 400, "empty_body"),
        (b'{"messages": [], "pad": "' + b"x" * 300_000 + b'"}', {}, 413, "body_too_large"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_the_ingress_body_reader_guards_llm_too(llm_url, data, headers, status, code):
    assert_error(chat(llm_url, data=data, headers={"Content-Type": "application/json", **headers}), status, code)


def test_a_slow_body_gets_408(llm_url):
    body = json.dumps({"messages": MSG}).encode()
    sock, stop = connect(llm_url), threading.Event()
    path = llm_url.split("/", 3)[3]
    head = (
        f"POST /{path}/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:3])

    def trickle():
        for i in range(3, len(body)):
            if stop.wait(0.5) or not send_quietly(sock, body[i : i + 1]):
                return

    threading.Thread(target=trickle, daemon=True).start()
    t0 = time.monotonic()
    status, raw = status_of(sock, timeout=LIMITS["serve.body_timeout_s"] + 15)
    stop.set()
    assert status == 408 and json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"] == "body_timeout"
    assert time.monotonic() - t0 <= LIMITS["serve.body_timeout_s"] + 2


def test_security_headers(llm_url):
    r = requests.get(f"{llm_url}/models", headers=bearer(TOKEN), timeout=30)
    assert r.headers["Content-Security-Policy"] == CSP and r.headers["X-Content-Type-Options"] == "nosniff"
