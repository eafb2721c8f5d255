"""OpenAI-compatible chat endpoint on the base chat model (`cfg.generator.base_model`): Ray Serve + FastAPI.

    POST /v1/chat/completions   non-streaming, or `"stream": true` for server-sent events (OpenAI chunk format)
    GET  /v1/models, /v1/models/{model}

The request is the ECR endpoint's (`ecr_ray/api.py` `chat_request`): system / developer / user / assistant messages,
content as a string or text parts, max_tokens, temperature, top_p, stop, seed, stream_options.include_usage; what it
does not do (tools, logprobs, ...) is refused with a 400 naming the parameter. `usage` counts the prompt's and the
reply's tokens; `finish_reason` is `length` when max_tokens cut the reply.

It is the offline default endpoint for LLM emotion labelling, so it lives below both the labelling stage and the
serving layer: the labelling job starts it with `start_local(cfg)`; `ecr_ray/serve/llm.py` is the Serve import path
that deploys it as the `/llm` application (`serve run ecr_ray.serve.llm:app recipe=demo`, bind 127.0.0.1). With
`generator.engine: vllm` it is Ray Serve LLM's OpenAI app on the base model (`openai_app`).

It shares the ECR ingress's guards (`ecr_ray/api.py`): the same bearer tokens (`serve.api_token_env`), the same body
reader (byte limit `serve.max_body_bytes`, deadline `serve.body_timeout_s`), OpenAI-shaped JSON errors and security
headers; its own limits are `serve.llm_max_messages`, `serve.llm_max_chars` per message and `serve.llm_max_tokens`. One
generation runs at a time per replica; a request that cannot start within `serve.request_timeout_s` is answered 503.
"""

# no `from __future__ import annotations`: Serve rewrites handler signatures and FastAPI needs real types

import asyncio
import json
import os
import socket
import threading
import time
import urllib.request
import uuid
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from ray import serve
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

from ecr_ray.api import (
    APIError,
    BearerAuth,
    SecurityHeaders,
    StopCutter,
    chat_request,
    install_errors,
    parse_chat,
    read_json,
)
from ecr_ray.config import Config
from ecr_ray.hub import device, dtype, is_hub_id, load_chat_model, resolve, served_model_id
from ecr_ray.serve_spec import ray_serve_llm, vllm_config

api = FastAPI(title="ecr-ray base chat model (OpenAI-compatible)")
api.add_middleware(SecurityHeaders)
install_errors(api)


@serve.deployment(max_ongoing_requests=64)
@serve.ingress(api)
class ChatModel:
    def __init__(self, cfg: Config):
        import torch  # heavy: imported by the replica that loads the model, not by a job that only starts it

        g, s = cfg.generator, cfg.serve
        self.limits, self.name, self.base_model = s, served_model_id(g.base_model), g.base_model
        self.ChatRequest = chat_request(s.llm_max_messages, s.llm_max_chars, s.llm_max_tokens)
        self.default_max_tokens = min(max(g.max_new_tokens, 128), s.llm_max_tokens)
        self.auth = BearerAuth(s.api_token_env)  # the ECR ingress's tokens, from this replica's environment
        threads = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)) or os.cpu_count() or 1
        torch.set_num_threads(max(1, threads))  # the CPUs the replica reserved
        on = device(g.device)
        self.tok, self.model = load_chat_model(g.base_model, dtype(g.dtype, on), on, cfg.offline)
        eos = self.model.generation_config.eos_token_id
        self.eos = {self.tok.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        self.lock = threading.Lock()  # one generate at a time per replica: CPU threads are the bottleneck

    @api.get("/v1/models")
    def models(self, request: Request) -> dict:
        self.auth.client(request)
        return {"object": "list", "data": [self._card()]}

    @api.get("/v1/models/{model}")
    def model(self, model: str, request: Request) -> dict:
        self.auth.client(request)
        self._check_model(model)
        return self._card()

    def _card(self) -> dict:
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "ecr-ray"}

    def _check_model(self, model: str | None) -> None:
        if model not in (None, "", self.name, self.base_model):
            raise APIError(
                404,
                f"model {model!r} not served; this endpoint serves {self.name!r}",
                param="model",
                code="model_not_found",
            )

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request):
        self.auth.client(request)
        obj = await read_json(request, self.limits.max_body_bytes, self.limits.body_timeout_s)
        req = parse_chat(self.ChatRequest, obj, self.limits.llm_max_chars)
        self._check_model(req.model)
        inputs, gen = self._prepare(req)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        await self._acquire()  # the generation thread releases it when it ends, whatever the client does
        if req.stream:
            run = self._start_stream(inputs, gen)
            return StreamingResponse(self._sse(run, req, cid, created), media_type="text/event-stream")
        out = await asyncio.to_thread(self._generate, inputs, gen)
        text, finish, usage = self._outcome(inputs, out, gen, req.stops())
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }

    def _outcome(self, inputs, out, gen: dict, stops: list[str]) -> tuple[str, str, dict]:
        """(the reply up to its first stop sequence, finish_reason, usage) of one generation: `length` when it was
        cut at max_tokens, else `stop` (the model ended it, or a stop sequence did)."""
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self.tok.decode(new, skip_special_tokens=True)
        shown = StopCutter(stops).cut(text)
        ended = bool(len(new)) and int(new[-1]) in self.eos
        cut = shown == text and not ended and len(new) >= gen["max_new_tokens"]
        n_prompt, n_new = int(inputs["input_ids"].shape[1]), int(len(new))
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}
        return shown, "length" if cut else "stop", usage

    async def _acquire(self) -> None:
        """The replica's one generation slot, or 503 when it does not free up within serve.request_timeout_s.
        Polled from the event loop, so a request cancelled while waiting cannot take the slot afterwards."""
        wait = self.limits.request_timeout_s
        deadline = time.monotonic() + wait
        while not self.lock.acquire(blocking=False):
            if time.monotonic() > deadline:
                raise APIError(
                    503, f"the model is busy: no generation slot freed up within {wait:g} s; retry", code="overloaded"
                )
            await asyncio.sleep(0.05)

    def _prepare(self, req):
        # The chat template knows system, user and assistant: a developer message is the system prompt.
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        prompt = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        inputs = self.tok(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        gen = {"max_new_tokens": req.max_new_tokens() or self.default_max_tokens, "pad_token_id": self.tok.pad_token_id}
        temperature = 1.0 if req.temperature is None else req.temperature  # OpenAI's defaults
        if temperature > 0:
            gen |= {"do_sample": True, "temperature": temperature, "top_p": req.top_p or 1.0}
        else:
            gen |= {"do_sample": False}
        if req.stops():  # generation ends at a stop sequence; the reply is cut before it
            gen |= {"stop_strings": req.stops(), "tokenizer": self.tok}
        if req.seed is not None:
            gen["seed"] = req.seed
        return inputs, gen

    def _generate(self, inputs, gen):
        """model.generate on this replica's one generation slot (released when done); `seed` seeds sampling."""
        import torch

        try:
            gen = dict(gen)
            if (seed := gen.pop("seed", None)) is not None:
                torch.manual_seed(seed)  # one generation at a time per replica: the global generator is ours
            return self.model.generate(**inputs, **gen)
        finally:
            self.lock.release()

    def _start_stream(self, inputs, gen) -> dict:
        """Generation in a thread of its own (which releases the lock when done): its text as an iterator
        (`streamer`), its output ids once done (`out`), the thread; and the inputs and settings it ran with."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
        run = {"streamer": streamer, "inputs": inputs, "gen": gen}

        def target():
            run["out"] = self._generate(inputs, {**gen, "streamer": streamer})

        run["thread"] = threading.Thread(target=target, daemon=True)
        run["thread"].start()
        return run

    def _sse(self, run: dict, req, cid: str, created: int):
        """Server-sent events of one generation's text, up to its first stop sequence; with
        `stream_options.include_usage`, a last chunk with the usage (empty `choices`), as OpenAI sends it."""
        with_usage = req.include_usage()

        def chunk(delta: dict, finish: str | None) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **({"usage": None} if with_usage else {}),
            }
            return f"data: {json.dumps(body)}\n\n"

        cutter = StopCutter(req.stops())
        yield chunk({"role": "assistant", "content": ""}, None)
        for piece in run["streamer"]:
            if piece and (text := cutter.feed(piece)):
                yield chunk({"content": text}, None)
        if text := cutter.close():
            yield chunk({"content": text}, None)
        run["thread"].join()
        _, finish, usage = self._outcome(run["inputs"], run["out"], run["gen"], req.stops())
        yield chunk({}, finish)
        if with_usage:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.name}
            yield f"data: {json.dumps({**body, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"


def base_llm_config(cfg: Config) -> dict[str, Any]:
    """The Ray Serve LLM config of the base chat model (the `/llm` endpoint), under the id the transformers endpoint
    answers to (`hub.served_model_id`): a hub id stays a hub id (vLLM reads it from the shared HF cache)."""
    name = cfg.generator.base_model
    return vllm_config(cfg, served_model_id(name), name if is_hub_id(name) else resolve(name, cfg.offline))


def openai_app(cfg: Config) -> serve.Application:
    """The endpoint on vLLM: Ray Serve LLM's OpenAI-compatible app on the base model."""
    serve_llm = ray_serve_llm()  # needs vLLM (GPU images only): an ImportError naming the extra otherwise
    return serve_llm.build_openai_app({"llm_configs": [serve_llm.LLMConfig(**base_llm_config(cfg))]})


def build_app(cfg: Config):
    """The Serve application for `cfg.generator.base_model` (on vLLM through Ray Serve LLM with engine vllm)."""
    if cfg.generator.engine == "vllm":
        return openai_app(cfg.with_absolute_paths())
    return ChatModel.options(**cfg.serve.deployment_options("ChatModel")).bind(cfg.with_absolute_paths())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local(cfg: Config, timeout_s: float = 180.0) -> tuple[str, str]:
    """Serve the endpoint in the current Ray cluster as an application of its own (a fresh name); returns its `/v1`
    base URL once it answers, and the application's name, so that the caller deletes only what it started. Serve is
    started on 127.0.0.1 (a free port) when it is not running yet; a running Serve keeps its own HTTP options."""
    try:  # Serve runs in this cluster: use its proxy
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        port = ray.get(controller.get_http_config.remote()).port
    except ValueError:  # it does not: start it on loopback
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    name = f"llm-{uuid.uuid4().hex[:8]}"
    serve.run(build_app(cfg), name=name, route_prefix=f"/{name}")
    url = f"http://127.0.0.1:{port}/{name}/v1"
    probe = urllib.request.Request(f"{url}/models", headers=auth_header(cfg.serve.api_token_env))
    deadline = time.time() + timeout_s
    while True:  # the proxy answers 404 for a while after the app is RUNNING
        try:
            with urllib.request.urlopen(probe, timeout=5) as r:
                if r.status == 200:
                    return url, name
        except OSError:
            pass
        if time.time() > deadline:
            serve.delete(name)
            raise TimeoutError(f"LLM endpoint at {url} did not come up in {timeout_s:.0f} s")
        time.sleep(0.5)


def own_token(env: str) -> str:
    """This process's token for the service's own endpoints (the first of `env`'s tokens), or ""."""
    return next((t.strip() for t in os.environ.get(env, "").split(",") if t.strip()), "")


def auth_header(env: str) -> dict[str, str]:
    token = own_token(env)
    return {"Authorization": f"Bearer {token}"} if token else {}
