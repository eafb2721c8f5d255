"""The labelling client against a real HTTP server on 127.0.0.1 that fails on purpose."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from ecr_ray.labelling.client import ChatClient, estimate_cost, redact
from ecr_ray.labelling.predictor import LLMLabeler


class FlakyServer:
    """OpenAI-shaped /v1/chat/completions; `script` holds the status codes to answer before succeeding."""

    def __init__(self, script=(), delay=0.0):
        self.script, self.delay, self.calls, self.inflight, self.max_inflight = list(script), delay, 0, 0, 0
        self.echo = ""  # extra text the "echo" answer quotes
        self.lock = threading.Lock()
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                with srv.lock:
                    srv.calls += 1
                    srv.inflight += 1
                    srv.max_inflight = max(srv.max_inflight, srv.inflight)
                    code = srv.script.pop(0) if srv.script else 200
                time.sleep(srv.delay if code != "hang" else 3)
                with srv.lock:
                    srv.inflight -= 1
                code = 200 if code == "hang" else code
                if code == "echo":  # a server that quotes what it was sent, as some do on a bad key
                    code, message = 401, f"Incorrect API key provided: {self.headers['authorization']}; {srv.echo}"
                else:
                    message = "boom"
                body = (
                    {"error": {"message": message}}
                    if code != 200
                    else {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "happy, joy; fine"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
                    }
                )
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = FlakyServer(*getattr(request, "param", ((), 0.0)))
    yield s
    s.close()


MSG = [{"role": "user", "content": "hi"}]


def client(url, **kw):
    return ChatClient(url, "m", backoff_initial_s=0.01, backoff_max_s=0.05, **kw)


@pytest.mark.parametrize("server", [([429, 500, 503], 0.0)], indirect=True)
def test_retries_429_and_5xx_then_succeeds(server):
    c = client(server.url).complete(MSG)
    assert c.error == "" and c.text == "happy, joy; fine" and c.attempts == 4 and server.calls == 4
    assert (c.prompt_tokens, c.completion_tokens) == (11, 5)


@pytest.mark.parametrize("server", [([400], 0.0)], indirect=True)
def test_client_error_is_recorded_not_retried(server):
    c = client(server.url).complete(MSG)
    assert server.calls == 1 and c.text == "" and "400" in c.error


@pytest.mark.parametrize("server", [([500] * 10, 0.0)], indirect=True)
def test_gives_up_after_max_retries(server):
    c = client(server.url, max_retries=2).complete(MSG)
    assert server.calls == 3 and "500" in c.error


@pytest.mark.parametrize("server", [(["hang"], 0.0)], indirect=True)
def test_timeout_is_retried(server):
    c = client(server.url, timeout_s=0.5).complete(MSG)
    assert c.error == "" and c.attempts == 2


@pytest.mark.parametrize("server", [((), 0.2)], indirect=True)
def test_concurrency_is_bounded_and_order_kept(server):
    out = client(server.url, concurrency=3).complete_many([MSG] * 9)
    assert len(out) == 9 and all(c.text for c in out)
    assert server.max_inflight == 3


def test_cost_estimate():
    assert estimate_cost(2000, 500, 0.5, 1.5) == pytest.approx(1.0 + 0.75)


SECRETS = {
    "OPENAI_API_KEY": "sk-proj-Abc123DEF456ghi789",
    "HF_TOKEN": "hf_SeCrEtToKeN42xyz",
    "ECR_API_TOKEN": "first-token-123456,second-token-654321",
    "MY_SERVICE_API_KEY": "qwerty-uiop-98765",
}


@pytest.fixture
def secrets_in_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _leaks(text: str) -> list[str]:
    values = [v for value in SECRETS.values() for v in value.split(",")]
    return [v for v in values if v in text]


def test_redact_removes_env_secrets_bearer_tokens_and_keys(secrets_in_env):
    text = (
        "Incorrect API key provided: sk-proj-Abc123DEF456ghi789. headers: Authorization: Bearer opaque.tok/en=; "
        "hf=hf_SeCrEtToKeN42xyz second-token-654321 api_key=abcdef123 'token': 'zzz999' other sk-ZZZZZZZZZZZZ "
        "MY_SERVICE_API_KEY value qwerty-uiop-98765; status 401 for model smollm2-135m-instruct"
    )
    out = redact(text)
    assert not _leaks(out) and "opaque.tok/en" not in out and "abcdef123" not in out and "zzz999" not in out
    assert "sk-ZZZZ" not in out and out.count("[redacted]") >= 8
    assert "status 401 for model smollm2-135m-instruct" in out  # the rest of the message is kept


@pytest.mark.parametrize("server", [(["echo"], 0.0)], indirect=True)
def test_a_key_echoed_by_the_server_is_not_stored(server, secrets_in_env, tmp_path):
    """The error text is what the labelling job stores per row (its shard's `error` column): no key in it."""
    server.echo = f"also saw {SECRETS['HF_TOKEN']} and {SECRETS['MY_SERVICE_API_KEY']}"
    labeler = LLMLabeler(server.url, "m", str(tmp_path), {"max_retries": 0, "backoff_initial_s": 0.01})
    batch = {
        "turn_id": ["t1"],
        "conversation_id": ["c1"],
        "split": ["train"],
        "turn_index": [0],
        "utterance": ["I loved it"],
        "history": ["[]"],
    }
    labeler(batch)
    (shard,) = tmp_path.glob("part-*.parquet")
    row = pq.read_table(shard).to_pylist()[0]
    assert row["status"] == "error" and "401" in row["error"] and "[redacted]" in row["error"], row["error"]
    assert not _leaks(json.dumps(row)), row["error"]
