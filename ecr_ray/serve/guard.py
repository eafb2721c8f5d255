"""Deadlines and a size limit for HTTP request headers, in Ray Serve's HTTP proxy.

Serve's proxy runs uvicorn with httptools and passes it no header limits: a client may take as long as it likes to
send its request line and headers (a connection that sends nothing is held forever) and may send megabytes of
them. Neither reaches the application, so the ingress cannot refuse them; this module does it in the proxy:

- headers not complete `serve.header_timeout_s` after the connection opened (or after the first byte of the next
  request on a kept-alive connection) → `408 Request Timeout`, connection closed;
- more than `serve.max_header_bytes` of request line + headers → `431 Request Header Fields Too Large`, connection
  closed; the bytes are counted before they are parsed, so no more than one socket read is ever held.
- a request answered before its body arrived (a 413 for a body over the limit) keeps its connection while the rest
  of the body is read and dropped, so a client still sending reads the answer instead of a broken pipe; up to
  `MAX_DRAIN_BYTES` and within `serve.header_timeout_s` of the answer, else the connection is closed.

Ray 2.60 exposes no option for either (HTTPOptions has `keep_alive_timeout_s` and an end-to-end
`request_timeout_s`, which starts only once the headers are in), but it runs `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`
in every proxy process before the proxy's uvicorn starts. `proxy_callback` is that hook: it makes uvicorn's `auto`
HTTP protocol (the one Serve asks for) a subclass of httptools' protocol with the two checks. The settings reach
the proxy through the environment of the Ray processes (`proxy_env`): set them where Ray starts (`ecr-ray serve`
does when it starts Ray itself; `ray start` / the pods' env on a cluster). Direct ingress and HAProxy modes do not
use this proxy.
"""

from __future__ import annotations

import json
import logging
import os

from ecr_ray.config import ServeConfig

CALLBACK = "ecr_ray.serve.guard:proxy_callback"
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
TIMEOUT_ENV, MAX_BYTES_ENV = "ECR_SERVE_HEADER_TIMEOUT_S", "ECR_SERVE_MAX_HEADER_BYTES"
MAX_DRAIN_BYTES = 64 * 1024 * 1024
"""Most bytes of a refused request's body read and dropped after its answer (then the connection is closed)."""

log = logging.getLogger("ray.serve")


def proxy_env(serve_cfg) -> dict[str, str]:
    """The environment variables that install the guard in Serve's proxies, with the recipe's limits."""
    return {
        CALLBACK_ENV: CALLBACK,
        TIMEOUT_ENV: str(serve_cfg.header_timeout_s),
        MAX_BYTES_ENV: str(serve_cfg.max_header_bytes),
    }


def proxy_callback() -> list:
    """Serve's proxy start-up hook: install the guarded protocol; no middlewares."""
    timeout_s = float(os.environ.get(TIMEOUT_ENV, ServeConfig.header_timeout_s))
    max_bytes = int(os.environ.get(MAX_BYTES_ENV, ServeConfig.max_header_bytes))
    install(timeout_s, max_bytes)
    return []


def install(timeout_s: float, max_bytes: int) -> None:
    """Make uvicorn's `auto` HTTP protocol the guarded one in this process (idempotent)."""
    import uvicorn.protocols.http.auto as auto

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # h11 instead: it caps headers itself (16 KiB, → 400) but has no header deadline
        log.warning("ecr-ray header guard: httptools is not installed; request headers have no deadline")
        return
    base = getattr(auto.AutoHTTPProtocol, "guarded_base", auto.AutoHTTPProtocol)
    if base is not HttpToolsProtocol:
        log.warning("ecr-ray header guard: uvicorn's auto protocol is %s, not httptools; not installed", base)
        return
    auto.AutoHTTPProtocol = type(
        "GuardedHttpToolsProtocol",
        (_Guard, HttpToolsProtocol),
        {"header_timeout_s": timeout_s, "max_header_bytes": max_bytes, "guarded_base": HttpToolsProtocol},
    )
    log.info("ecr-ray header guard: headers within %.1f s and %d bytes", timeout_s, max_bytes)


class _Guard:
    """Mixed into httptools' protocol: a deadline and a byte budget for each request's line + headers.

    The bytes are counted as they arrive, up to the blank line that ends the headers, and checked before the parser
    sees them: a request over the budget is refused without parsing (or buffering) any more of it."""

    header_timeout_s: float
    max_header_bytes: int

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = None
        self._body_done, self._drained = True, None  # _drained: bytes dropped after an early answer, or None
        self._expect_headers()
        self._arm()  # a connection that sends nothing is closed too

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expect_headers(self) -> None:
        self._in_headers, self._header_bytes, self._tail = True, 0, b""

    def on_message_begin(self) -> None:
        self._body_done = False
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_done = True
        super().on_message_complete()
        if self._drained is not None:  # the rest of an answered request's body is in: the next request may come
            self._drained = None
            self._disarm()
            self._expect_headers()
            self._arm()

    def on_response_complete(self) -> None:
        if self._body_done:
            self._expect_headers()  # whatever comes next on this connection starts a request
        else:  # answered before its body arrived (e.g. 413): read and drop the rest, so the client reads the answer
            self._drained = 0
            self._disarm()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._close)
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        if self._drained is not None:
            self._drained += len(data)
            if self._drained > MAX_DRAIN_BYTES:
                self._close()
                return
        elif self._in_headers:
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = window[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431)
                return
        super().data_received(data)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._refuse, 408)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _close(self) -> None:
        """End a connection whose answer was sent (a refused body too large or too slow to drop)."""
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int) -> None:
        """Answer `status` (JSON, in the service's error shape) and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # pipelined behind a response in progress
            if status == 408:
                self.cycle.keep_alive = False  # closed once that response is sent
            else:
                self.transport.close()
            return
        if status == 431:
            message = f"request headers exceed {self.max_header_bytes} bytes"
            code = "headers_too_large"
        else:
            message = f"request headers did not arrive within {self.header_timeout_s:g} s"
            code = "header_timeout"
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        body = json.dumps({"error": error}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(head % (status, reason, len(body)) + body)
        self.transport.close()
