"""Hostile and broken clients against the real service (Ray Serve on 127.0.0.1, raw sockets): slow and oversized
headers, slow bodies, a bounded slowloris run beside a normal client, clients that hang up, and the security
headers of every answer. The deadlines are the test instance's (tests/serve/conftest.py LIMITS: 3 s)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from ecr_ray.api import CSP
from tests.serve.conftest import LIMITS
from tests.serve.httpraw import closed_by_server, connect, send_quietly, status_of

HEADER_S, BODY_S = LIMITS["serve.header_timeout_s"], LIMITS["serve.body_timeout_s"]
SLACK_S = 2.0  # scheduling on a shared 2-core machine
BODY = json.dumps({"dialogue": [{"role": "user", "text": "I loved Titanic"}], "generate": False}).encode()
JSON = {"Content-Type": "application/json"}
STATIC = Path(__file__).resolve().parents[2] / "ecr_ray" / "serve" / "static"


def head(path: str = "/v1/recommend", length: int | None = None, extra: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines).encode() + b"\r\n" + extra


def trickle(sock, data: bytes, every_s: float, stop: threading.Event) -> None:
    """Send `data` one byte at a time until it is all sent, the server closes, or `stop` is set."""
    for i in range(len(data)):
        if stop.is_set() or not send_quietly(sock, data[i : i + 1]):
            return
        stop.wait(every_s)


def error_code(raw: bytes) -> str:
    return json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"]


# ----------------------------------------------------------------------------- headers (Serve's proxy + guard.py)


def test_slow_headers_get_408_and_the_connection_is_closed(serve_url):
    sock, stop = connect(serve_url), threading.Event()
    t0 = time.monotonic()
    sock.sendall(b"POST /v1/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    threading.Thread(target=trickle, args=(sock, b"X-Slow: " + b"a" * 100, 0.2, stop), daemon=True).start()
    status, raw = status_of(sock, timeout=HEADER_S + 10)
    held = time.monotonic() - t0
    stop.set()
    assert status == 408 and error_code(raw) == "header_timeout", raw[:300]
    assert HEADER_S - 0.5 <= held <= HEADER_S + SLACK_S, held
    assert closed_by_server(sock, 5)


def test_a_connection_that_sends_nothing_is_closed(serve_url):
    sock = connect(serve_url)
    t0 = time.monotonic()
    status, raw = status_of(sock, timeout=HEADER_S + 10)
    assert status == 408 and error_code(raw) == "header_timeout"
    assert time.monotonic() - t0 <= HEADER_S + SLACK_S


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024, 8 * 1024 * 1024])
def test_oversized_headers_are_refused_with_431(serve_url, serve_cfg, size):
    sock = connect(serve_url)
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    t0 = time.monotonic()
    sender = threading.Thread(target=send_quietly, args=(sock, big), daemon=True)
    sender.start()
    status, raw = status_of(sock, timeout=30)
    sender.join(30)
    # The guard answers 431 and closes after at most one socket read past the limit; the client may still be
    # sending then, and its kernel may drop the answer on the reset: a closed connection is the other outcome.
    assert status == 431 or (status is None and raw == b""), raw[:200]
    if status == 431:
        assert error_code(raw) == "headers_too_large"
        assert str(serve_cfg.serve.max_header_bytes) in raw.decode(errors="replace")
    assert time.monotonic() - t0 < 10
    assert closed_by_server(sock, 5)


def test_headers_within_the_limit_pass(serve_url):
    r = requests.get(f"{serve_url}/healthz", headers={"X-Padding": "a" * 12000}, timeout=30)
    assert r.status_code == 200


# ----------------------------------------------------------------------------- bodies (api.py read_json)


def test_slow_body_gets_408_and_the_connection_is_closed(serve_url):
    sock, stop = connect(serve_url), threading.Event()
    t0 = time.monotonic()
    sock.sendall(head(length=len(BODY)) + b"\r\n" + BODY[:5])
    threading.Thread(target=trickle, args=(sock, BODY[5:], 0.5, stop), daemon=True).start()
    status, raw = status_of(sock, timeout=BODY_S + 15)
    held = time.monotonic() - t0
    stop.set()
    assert status == 408 and error_code(raw) == "body_timeout", raw[:300]
    assert b"connection: close" in raw.lower()
    assert BODY_S - 0.5 <= held <= BODY_S + SLACK_S, held
    assert closed_by_server(sock, 5)


FIVE_MB = 5 * 1024 * 1024


class uploading:
    """A client still sending when the answer comes: `body` in chunks, a short pause between them. Sized, so that
    `requests` sends a Content-Length and not `Transfer-Encoding: chunked` (a generator gets chunked even beside a
    Content-Length header, requests 2.34: both headers at once, a malformed request the server answers with 400)."""

    def __init__(self, body: bytes, chunk: int = 64 * 1024, pause_s: float = 0.002):
        self.body, self.chunk, self.pause_s = body, chunk, pause_s

    def __len__(self) -> int:
        return len(self.body)

    def __iter__(self):
        for i in range(0, len(self.body), self.chunk):
            yield self.body[i : i + self.chunk]
            time.sleep(self.pause_s)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/recommend"])
def test_a_5mb_body_gets_a_413_the_client_can_read(serve_url, path):
    """The 413 is sent before the body has arrived; the proxy then reads and drops the rest instead of closing the
    connection under a client that is still sending (which saw a broken pipe, not the answer): `requests` sending 5
    MB while the answer is out (then a normal request on the same session), and the `openai` client."""
    import openai

    pad = b"x" * FIVE_MB
    body = b'{"model": "ecr", "messages": [{"role": "user", "content": "' + pad + b'"}]}'
    http = requests.Session()
    r = http.post(f"{serve_url}{path}", data=uploading(body), headers=JSON, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text[:300]
    again = http.post(f"{serve_url}/v1/recommend", data=BODY, headers=JSON, timeout=60)
    assert again.status_code == 200 and again.json()["items"]
    client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="ecr", messages=[{"role": "user", "content": "x" * FIVE_MB}])
    assert e.value.status_code == 413 and "limit" in e.value.message


def test_a_client_that_hangs_up_mid_body_is_not_a_500(serve_url):
    """A client gone is logged at info level (Serve's access log says CANCELLED): no 500, no error line."""
    logs = _ingress_logs()
    offsets = {p: p.stat().st_size for p in logs}
    for _ in range(3):
        sock = connect(serve_url)
        sock.sendall(head(length=len(BODY)) + b"\r\n" + BODY[:10])
        time.sleep(1.5)  # the ingress is reading the body (its deadline is 3 s)
        sock.close()
    deadline, settle = time.monotonic() + 20, None  # log lines reach the files a little later on a loaded machine
    while True:
        new = "".join(_read_from(p, offsets.get(p, 0)) for p in _ingress_logs())
        lines = [ln for ln in new.splitlines() if "/v1/recommend" in ln]
        if settle is None and any("CANCELLED" in ln for ln in lines):
            settle = time.monotonic() + 2  # the first is in: 2 s more for the others (and any error line)
        if sum("CANCELLED" in ln for ln in lines) >= 3 or time.monotonic() > (settle or deadline):
            break
        time.sleep(0.5)
    assert not [ln for ln in lines if " 500 " in ln or ln.startswith(("ERROR", "WARNING"))], lines
    # Serve cancels each request; one whose cancel reaches the ingress while it reads the body (not before the proxy
    # handed it over: a race on a loaded machine) is logged CANCELLED at INFO — at least one of the three here.
    cancelled = [ln for ln in lines if "CANCELLED" in ln]
    assert cancelled and all(ln.startswith("INFO") for ln in cancelled), lines
    assert all(ln.startswith("INFO") for ln in lines if "client disconnected" in ln), lines


def _ingress_logs() -> list[Path]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return sorted(logs.glob("replica_ecr_ECRIngress_*.log"))


def _read_from(path: Path, offset: int) -> str:
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()


# ----------------------------------------------------------------------------- slowloris, bounded


def test_slowloris_does_not_starve_a_normal_client(serve_url):
    """20 slow connections (10 trickling headers, 10 trickling a body, a byte every 0.5 s) for at most 20 s, while a
    normal client asks for recommendations. Measures how long the service holds each slow connection and what the
    normal client sees; docs/serve.md carries the figures."""
    stop, results, lock = threading.Event(), [], threading.Lock()

    def slow(kind: str) -> None:
        sock = connect(serve_url)
        t0 = time.monotonic()
        if kind == "headers":
            sock.sendall(b"POST /v1/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            rest = b"X-Slow: " + b"a" * 200
        else:
            sock.sendall(head(length=len(BODY)) + b"\r\n")
            rest = BODY
        threading.Thread(target=trickle, args=(sock, rest, 0.5, stop), daemon=True).start()
        status, _ = status_of(sock, timeout=20)
        with lock:
            results.append((kind, status, time.monotonic() - t0))
        sock.close()

    slow_threads = [threading.Thread(target=slow, args=(k,)) for k in ["headers", "body"] * 10]
    for t in slow_threads:
        t.start()
    time.sleep(0.5)  # all 20 connected
    normal, t_end = [], time.monotonic() + 2 * max(HEADER_S, BODY_S) + 2
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        r = requests.post(f"{serve_url}/v1/recommend", data=BODY, headers=JSON, timeout=30)
        normal.append((r.status_code, time.monotonic() - t0))
        time.sleep(0.2)
    for t in slow_threads:
        t.join(25)
    stop.set()
    held = {k: sorted(s for kind, _, s in results if kind == k) for k in ("headers", "body")}
    lat = sorted(s for _, s in normal)
    print(
        f"\nslowloris: {len(results)} slow connections; held headers max {held['headers'][-1]:.2f} s, body max "
        f"{held['body'][-1]:.2f} s; statuses {sorted({(k, st) for k, st, _ in results})}; normal client "
        f"{len(normal)} requests, {sum(c == 200 for c, _ in normal)} × 200, p50 {lat[len(lat) // 2] * 1000:.0f} ms, "
        f"max {lat[-1] * 1000:.0f} ms"
    )
    assert len(results) == 20
    assert all(st == 408 for _, st, _ in results), results
    assert held["headers"][-1] <= HEADER_S + SLACK_S and held["body"][-1] <= BODY_S + SLACK_S, held
    assert normal and all(c == 200 for c, _ in normal), normal
    assert lat[-1] < 5.0, lat


# ----------------------------------------------------------------------------- response headers


@pytest.mark.parametrize(
    "method,path,status",
    [("GET", "/", 200), ("GET", "/static/app.js", 200), ("POST", "/v1/recommend", 400), ("GET", "/nope", 404)],
)
def test_security_headers_on_every_answer(serve_url, method, path, status):
    r = requests.request(method, f"{serve_url}{path}", timeout=30)
    assert r.status_code == status
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_needs_no_inline_script_or_style():
    """CSP is self-only: the page may load its own files but run nothing inline."""
    html = (STATIC / "index.html").read_text()
    js = (STATIC / "app.js").read_text()
    assert "<script>" not in html and not re.search(r"\son[a-z]+\s*=", html) and "style=" not in html
    assert "innerHTML" not in js and '"style"' not in js and "style:" not in js and "eval(" not in js
