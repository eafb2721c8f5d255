"""HTTP API of the ECR service: request models, body parsing, bearer auth, JSON errors and response headers.

Everything a client can get wrong is caught here, before any model runs: the body is read with a byte limit and a
deadline, decoded as strict UTF-8, parsed as JSON and validated by pydantic models whose limits (turns, characters,
top_k) come from the recipe's `serve` section. Every mistake becomes an `APIError` → a 4xx JSON body in OpenAI's
error shape, `{"error": {"message", "type", "param", "code"}}`, with OpenAI's statuses (an invalid request is 400, as
OpenAI and Ray Serve LLM answer it), so the `openai` client raises the class it documents (`BadRequestError`, ...).
Both applications — the ECR ingress (app.py) and the base model at /llm (llm.py) — use these pieces: `read_json`,
`BearerAuth`, `install_errors`, `SecurityHeaders`, the chat-completion request (`chat_request`) and `StopCutter`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model, field_validator

from ecr_ray.config import Config, ServeConfig, load_config

SESSION_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
log = logging.getLogger("ray.serve")


# ----------------------------------------------------------------------------- errors


class APIError(Exception):
    """A request the service refuses; `status` is the HTTP code, `param` the offending field (dotted path)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        details: list[dict] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.details = status, message, param, code, details
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        err = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and not part.isidentifier():
            continue  # the member of a union pydantic tried (`constrained-str`, `list[ContentPart]`): not a field
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unrecognized request argument (not a parameter this endpoint knows)"
    return err["msg"]


def validation_error(e: ValidationError) -> APIError:
    """pydantic errors → one readable 400 (field paths like `dialogue[2].role`; the input is never echoed back)."""
    details: list[dict] = []
    for err in e.errors(include_url=False):
        param = _loc(err["loc"])
        if all(d["param"] != param for d in details):  # a union's members fail alike: its first member's reason
            details.append({"param": param, "message": _message(err)})
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return APIError(
        400, f"{first['param']}: {first['message']}{more}", param=first["param"], code="invalid_value", details=details
    )


async def read_json(request, max_bytes: int, timeout_s: float | None = None) -> Any:
    """The request body as JSON, refusing oversized (413), late (408), non-UTF-8 / malformed (400) and non-JSON
    (415) bodies.

    The byte limit is enforced on Content-Length and again while streaming, so a lying or chunked client cannot
    make the server buffer more than `max_bytes`; the whole body must arrive within `timeout_s`, so a client that
    trickles it cannot hold the request. A client that hangs up while sending raises starlette's ClientDisconnect.
    """
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise APIError(415, f"unsupported Content-Type {ctype!r}; send application/json", code="unsupported_media_type")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise APIError(400, f"invalid Content-Length header {length!r}", code="bad_content_length")
        if int(length) > max_bytes:
            raise APIError(413, f"request body is {length} bytes; the limit is {max_bytes}", code="body_too_large")
    try:
        async with asyncio.timeout(timeout_s):
            body = await _read_body(request, max_bytes)
    except TimeoutError:
        raise APIError(408, f"request body did not arrive within {timeout_s:g} s", code="body_timeout") from None
    if not body.strip():
        raise APIError(400, "request body is empty; expected a JSON object", code="empty_body")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        raise APIError(
            400, f"request body is not valid UTF-8 (byte {e.start}: {e.reason})", code="invalid_utf8"
        ) from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise APIError(
            400, f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", code="invalid_json"
        ) from None
    except (ValueError, RecursionError) as e:
        raise APIError(400, f"request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(obj, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(obj).__name__}", code="invalid_type")
    return obj


async def _read_body(request, max_bytes: int) -> bytearray:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise APIError(413, f"request body exceeds the limit of {max_bytes} bytes", code="body_too_large")
    return body


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def parse(model: type[BaseModel], obj: dict) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise validation_error(e) from None


# ----------------------------------------------------------------------------- auth


class BearerAuth:
    """`Authorization: Bearer <token>` against the tokens in environment variable `env` (comma-separated: one per
    client; unset or empty = open). The tokens are read from this process's environment, never from a config file,
    and never logged."""

    def __init__(self, env: str):
        self.tokens = [t.strip().encode() for t in os.environ.get(env, "").split(",") if t.strip()]

    def client(self, request) -> str:
        """The caller's identity — a hash of its token when auth is on, else its IP address; 401 without a valid
        token."""
        if not self.tokens:
            return "ip:" + (request.client.host if request.client else "unknown")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given_b = given.strip().encode()
        # Every token is compared (constant time each), so the time taken does not tell which one is closest.
        matches = [hmac.compare_digest(given_b, t) for t in self.tokens]
        if scheme.lower() != "bearer" or not any(matches):
            raise APIError(
                401,
                "missing or invalid bearer token (Authorization: Bearer <token>)",
                type="authentication_error",
                code="invalid_api_key",
            )
        return "token:" + hashlib.sha256(given_b).hexdigest()[:16]


# ----------------------------------------------------------------------------- errors and headers on the app


def install_errors(api) -> None:
    """Every error of a FastAPI app as an OpenAI-shaped JSON body: APIError, FastAPI's and Starlette's own (404,
    405, validation), a client that hung up (499, logged at info), and bugs (500, no traceback to the client)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from ray.exceptions import TaskCancelledError
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    @api.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else {}
        if e.status == 408:  # the rest of a late body is not worth reading: end the connection
            headers["Connection"] = "close"
        return JSONResponse(e.body(), status_code=e.status, headers=headers or None)

    @api.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        return JSONResponse(
            APIError(e.status_code, str(e.detail), code="http_error").body(),
            status_code=e.status_code,
            headers=getattr(e, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def _fastapi_validation(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"])
        return JSONResponse(APIError(400, f"{param}: {first['msg']}", param=param).body(), status_code=400)

    async def _client_gone(request, e: Exception):  # not our failure: no 500, no error line
        log.info("client disconnected (%s): %s %s", type(e).__name__, request.method, request.url.path)
        return Response(status_code=499)

    # Starlette raises ClientDisconnect while reading the body of a client that hung up; Serve cancels the
    # request, and the replica's pending read of it from the proxy raises TaskCancelledError.
    api.add_exception_handler(ClientDisconnect, _client_gone)
    api.add_exception_handler(TaskCancelledError, _client_gone)

    @api.exception_handler(Exception)
    async def _unexpected(request, e: Exception):  # a bug on our side: say so, without a traceback
        log.error("unexpected %s on %s %s", type(e).__name__, request.method, request.url.path)
        return JSONResponse(APIError(500, f"internal error ({type(e).__name__})").body(), status_code=500)


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The page, its static files and every API answer: nothing but this origin (no inline script or style).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load their bundles from jsdelivr and start them with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


class SecurityHeaders:
    """ASGI middleware: Content-Security-Policy, X-Frame-Options DENY, X-Content-Type-Options nosniff and
    Referrer-Policy on every response (streams included: only the response start is touched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"].endswith(DOCS_PATHS) else CSP

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                from starlette.datastructures import MutableHeaders

                headers = MutableHeaders(scope=message)
                for name, value in {**SECURITY_HEADERS, "Content-Security-Policy": csp}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ----------------------------------------------------------------------------- request models


class Models:
    """The request models of one `ServeConfig` (limits are part of the schema, so they show in /docs)."""

    def __init__(self, s: ServeConfig):
        Text = Annotated[str, StringConstraints(min_length=1, max_length=s.max_chars)]
        TopK = Annotated[int, Field(ge=1, le=s.max_top_k, description="number of movies to return")]
        NewTokens = Annotated[int, Field(ge=1, le=s.max_new_tokens)]

        class Turn(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True)
            role: Literal["user", "recommender"]
            text: Text

            @field_validator("text")
            @classmethod
            def _not_blank(cls, v: str) -> str:
                if not v.strip():
                    raise ValueError("text must not be blank")
                return v

        class RecommendRequest(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True)
            dialogue: Annotated[list[Turn], Field(min_length=1, max_length=s.max_turns)]
            """The conversation so far (with a session_id: only the new turns)."""
            top_k: TopK = s.default_top_k
            session_id: Annotated[str, StringConstraints(pattern=SESSION_ID)] | None = None
            generate: bool = True
            """Also write the empathetic reply (False = recommendation only, much faster)."""
            max_new_tokens: NewTokens | None = None

        self.Turn, self.RecommendRequest = Turn, RecommendRequest
        self.ChatRequest = chat_request(s.max_turns, s.max_chars, s.max_new_tokens)
        self.limits = s

    def recommend(self, obj: dict):
        req = parse(self.RecommendRequest, obj)
        if req.session_id is None and not any(t.role == "user" for t in req.dialogue):
            raise APIError(400, "dialogue: needs at least one user turn", param="dialogue", code="no_user_turn")
        return req

    def chat(self, obj: dict) -> tuple[Any, list[dict]]:
        """(request, dialogue): OpenAI messages → ECR turns (assistant → recommender; system and developer messages
        are not part of the dialogue)."""
        req = parse_chat(self.ChatRequest, obj, self.limits.max_chars)
        if not req.model:
            raise APIError(400, "model: required; this endpoint serves " + repr(self.limits.model_name), param="model")
        if req.model != self.limits.model_name:
            raise APIError(
                404,
                f"model {req.model!r} does not exist; available: [{self.limits.model_name!r}]",
                param="model",
                code="model_not_found",
            )
        dialogue = [
            {"role": "user" if m.role == "user" else "recommender", "text": m.text()}
            for m in req.messages
            if m.role in ("user", "assistant") and m.text().strip()
        ]
        if not dialogue or dialogue[-1]["role"] != "user":
            raise APIError(
                400,
                "messages: the last non-system message must be a non-empty user message",
                param="messages",
                code="no_user_turn",
            )
        return req, dialogue


# ----------------------------------------------------------------------------- OpenAI chat completions

# OpenAI parameters for what neither endpoint does (tools, logprobs, structured output, audio, penalties, ...): each
# is accepted only at the value that asks for nothing (a client or chat UI may send those), else refused by name.
UNSUPPORTED: dict[str, tuple[tuple, str]] = {
    "tools": ((None, []), "no tool calling"),
    "tool_choice": ((None, "none", "auto"), "no tool calling"),
    "parallel_tool_calls": ((None, False, True), "no tool calling"),
    "functions": ((None, []), "no function calling"),
    "function_call": ((None, "none", "auto"), "no function calling"),
    "response_format": ((None, {"type": "text"}), "plain text replies only"),
    "logprobs": ((None, False), "no log probabilities"),
    "top_logprobs": ((None, 0), "no log probabilities"),
    "logit_bias": ((None, {}), "no logit bias"),
    "presence_penalty": ((None, 0, 0.0), "only 0"),
    "frequency_penalty": ((None, 0, 0.0), "only 0"),
    "modalities": ((None, ["text"]), "text output only"),
    "audio": ((None,), "no audio output"),
    "prediction": ((None,), "no predicted outputs"),
    "web_search_options": ((None,), "no web search"),
    "reasoning_effort": ((None,), "the model does not reason"),
    "verbosity": ((None,), "no verbosity setting"),
}
IGNORED = ("user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key")
"""Request metadata OpenAI clients may send that changes nothing in a reply here: accepted, not used."""
MAX_STOP, MAX_STOP_CHARS = 4, 64  # OpenAI's limit on stop sequences; a bound on their length


def chat_request(max_messages: int, max_chars: int, max_tokens: int) -> type[BaseModel]:
    """The OpenAI chat-completion request both endpoints accept, with their limits (they show in /docs): roles
    system / developer / user / assistant, content a string or text parts, `max_tokens` / `max_completion_tokens`,
    `temperature`, `top_p`, `n` 1, `stop`, `seed`, `stream` with `stream_options.include_usage`; the metadata in
    IGNORED; the parameters in UNSUPPORTED at their "off" values only (`refuse_unsupported`); anything else is an
    unrecognized argument (400), as OpenAI answers it."""
    Content = Annotated[str, StringConstraints(max_length=max_chars)]
    Tokens = Annotated[int, Field(ge=1, le=max_tokens)]

    class ContentPart(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)
        type: str
        text: str | None = None

    class ChatMessage(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)  # OpenAI clients send name, refusal, ...
        role: Literal["system", "developer", "user", "assistant"]
        content: Content | list[ContentPart] | None = None

        def text(self) -> str:
            """The message's text (text parts joined; `parse_chat` has refused other parts)."""
            if self.content is None or isinstance(self.content, str):
                return self.content or ""
            return "".join(p.text or "" for p in self.content)

    class StreamOptions(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        include_usage: bool | None = None
        """Send a last chunk (empty `choices`) with the request's token usage, as OpenAI does."""
        include_obfuscation: bool | None = None
        """OpenAI pads its stream events against length side channels; this service does not, either way."""

    class ChatRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        model: str | None = None
        messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=max_messages)]
        stream: bool = False
        stream_options: StreamOptions | None = None
        max_tokens: Tokens | None = None
        max_completion_tokens: Tokens | None = None
        temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
        top_p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
        n: Annotated[int, Field(ge=1, le=1, description="only one choice is produced")] | None = None
        stop: Any = None
        """A string or up to 4 (`parse_chat` checks): the reply ends before the first of them (finish_reason
        `stop`)."""
        seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
        """Sampling seed: the same request with the same seed gets the same reply."""

        def max_new_tokens(self) -> int | None:
            return self.max_completion_tokens or self.max_tokens

        def stops(self) -> list[str]:
            return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

        def include_usage(self) -> bool:
            return bool(self.stream_options and self.stream_options.include_usage)

    # The metadata and the unsupported parameters are fields too (any JSON value), so they are not "unrecognized".
    return create_model("ChatRequest", __base__=ChatRequest, **dict.fromkeys((*IGNORED, *UNSUPPORTED), (Any, None)))


def refuse_unsupported(req) -> None:
    """400 naming the first parameter of UNSUPPORTED set to a value that asks for something (see `chat_request`)."""
    for name, (off, why) in UNSUPPORTED.items():
        value = getattr(req, name)
        if not any(value == o and type(value) is type(o) for o in off):
            raise APIError(
                400, f"{name}: not supported by this endpoint ({why})", param=name, code="unsupported_parameter"
            )


def parse_chat(model: type[BaseModel], obj: dict, max_chars: int):
    """A chat-completion request, validated: the schema, the unsupported parameters, content parts (text only) and
    each message's length with its parts joined."""
    req = parse(model, obj)
    refuse_unsupported(req)
    stops = [req.stop] if isinstance(req.stop, str) else req.stop
    if stops is not None and (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= MAX_STOP
        or not all(isinstance(x, str) and 1 <= len(x) <= MAX_STOP_CHARS for x in stops)
    ):
        raise APIError(
            400,
            f"stop: expected a string or a list of 1 to {MAX_STOP} strings of 1 to {MAX_STOP_CHARS} characters",
            param="stop",
            code="invalid_value",
        )
    if req.stream_options is not None and not req.stream:
        raise APIError(
            400, "stream_options: only allowed when stream is true", param="stream_options", code="invalid_value"
        )
    for i, m in enumerate(req.messages):
        if isinstance(m.content, list):
            bad = [p.type for p in m.content if p.type != "text"]
            if bad:
                raise APIError(
                    400,
                    f"messages[{i}].content: only text content parts are supported, got {bad[0]!r}",
                    param=f"messages[{i}].content",
                    code="unsupported_content",
                )
        if len(m.text()) > max_chars:
            raise APIError(
                400,
                f"messages[{i}].content: longer than {max_chars} characters",
                param=f"messages[{i}].content",
                code="invalid_value",
            )
    return req


class StopCutter:
    """Streamed text in, text out up to (not including) the first stop sequence: a piece that may be the start of one
    is held back until the next piece says whether it is. `stopped` once one was found (nothing more is let out)."""

    def __init__(self, stops: list[str]):
        self.stops, self.held, self.stopped = [s for s in stops if s], "", False
        self.hold = max((len(s) for s in self.stops), default=1) - 1

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        text = self.held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self.held = True, ""
            return text[:cut]
        keep = len(text) - self.hold if self.hold else len(text)
        self.held = text[keep:]
        return text[:keep]

    def close(self) -> str:
        """What is still held back when the text ends (it was not the start of a stop sequence)."""
        out, self.held = ("" if self.stopped else self.held), ""
        return out

    def cut(self, text: str) -> str:
        """A whole text: up to the first stop sequence."""
        return self.feed(text) + self.close()


# ----------------------------------------------------------------------------- application arguments


class AppArgs(BaseModel):
    """Arguments of `serve run ecr_ray.serve.app:app key=value ...` and of a Serve config's `args:`."""

    model_config = ConfigDict(extra="forbid")
    recipe: str = "demo"
    """Recipe name or YAML path."""
    run_dir: str | None = None
    """Run directory holding the trained stages (default: the recipe's)."""
    data_dir: str | None = None
    """Raw data directory (default: the recipe's)."""
    overrides: dict[str, Any] = {}
    """Any other config field, dotted: {"serve.max_turns": 20}."""
    apps: list[str] | None = None
    """The applications deployed together (a written config: ["ecr", "llm"]): their deployments must fit the
    cluster together (serve.check_resources). None: this application alone."""

    def config(self) -> Config:
        over = dict(self.overrides)
        if self.run_dir:
            over["run_dir"] = self.run_dir
        if self.data_dir:
            over["data.data_dir"] = self.data_dir
        return load_config(self.recipe, over)
