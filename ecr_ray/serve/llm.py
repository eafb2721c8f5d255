"""OpenAI-compatible chat endpoint on the base chat model (`cfg.generator.base_model`): Ray Serve + FastAPI.

    POST /v1/chat/completions   non-streaming, or `"stream": true` for server-sent events (OpenAI chunk format)
    GET  /v1/models

It is the offline default endpoint for LLM emotion labelling. Run it on its own with
`serve run ecr_ray.serve.llm:app recipe=demo` (bind 127.0.0.1), or from a job with `start_local(cfg)`.
"""

# no `from __future__ import annotations`: Serve rewrites handler signatures and FastAPI needs real types

import json
import os
import socket
import threading
import time
import uuid
from typing import Literal

import ray
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from ecr_ray.config import Config
from ecr_ray.hub import EMBEDDED

from .api import AppArgs

MAX_TOKENS_CAP = 1024
api = FastAPI(title="ecr-ray base chat model (OpenAI-compatible)")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we do not use (user, seed, ...)

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1)
    stream: bool = False


def model_id(base_model: str) -> str:
    """The name the endpoint answers to: `smollm2-135m-instruct` for the embedded model, else the path / hub id."""
    return EMBEDDED[base_model][2] if base_model in EMBEDDED else base_model


@serve.deployment(max_ongoing_requests=64)
@serve.ingress(api)
class ChatModel:
    def __init__(self, cfg: Config):
        import torch

        from ecr_ray.hub import device, dtype, load_chat_model

        g = cfg.generator
        self.name, self.base_model = model_id(g.base_model), g.base_model
        self.default_max_tokens = max(g.max_new_tokens, 128)
        threads = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)) or os.cpu_count() or 1
        torch.set_num_threads(max(1, threads))  # the CPUs the replica reserved
        on = device(g.device)
        self.tok, self.model = load_chat_model(g.base_model, dtype(g.dtype, on), on, cfg.offline)
        self.lock = threading.Lock()  # one generate at a time per replica: CPU threads are the bottleneck

    @api.get("/v1/models")
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 0, "owned_by": "ecr-ray"}]}

    @api.post("/v1/chat/completions")
    def chat(self, req: ChatRequest):
        if req.model not in (None, "", self.name, self.base_model):
            raise HTTPException(
                404,
                detail={
                    "message": f"model {req.model!r} not served; this endpoint serves {self.name!r}",
                    "type": "invalid_request_error",
                    "code": "model_not_found",
                },
            )
        inputs, gen = self._prepare(req)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            return StreamingResponse(self._sse(inputs, gen, cid, created), media_type="text/event-stream")
        with self.lock:
            out = self.model.generate(**inputs, **gen)
        new = out[0, inputs["input_ids"].shape[1] :]
        finished = bool(len(new)) and int(new[-1]) == self.tok.eos_token_id
        text = self.tok.decode(new, skip_special_tokens=True)
        n_prompt, n_new = int(inputs["input_ids"].shape[1]), int(len(new))
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop" if finished or n_new < gen["max_new_tokens"] else "length",
                }
            ],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new},
        }

    def _prepare(self, req: ChatRequest):
        msgs = [m.model_dump() for m in req.messages]
        prompt = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        inputs = self.tok(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        gen = {
            "max_new_tokens": req.max_completion_tokens or req.max_tokens or self.default_max_tokens,
            "pad_token_id": self.tok.pad_token_id,
        }
        if req.temperature > 0:
            gen |= {"do_sample": True, "temperature": req.temperature, "top_p": req.top_p}
        else:
            gen |= {"do_sample": False}
        return inputs, gen

    def _sse(self, inputs, gen, cid: str, created: int):
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True, timeout=600)

        def run():
            with self.lock:
                self.model.generate(**inputs, **gen, streamer=streamer)

        threading.Thread(target=run, daemon=True).start()

        def chunk(delta: dict, finish: str | None) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(body)}\n\n"

        yield chunk({"role": "assistant", "content": ""}, None)
        for piece in streamer:
            if piece:
                yield chunk({"content": piece}, None)
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"


def build_app(cfg: Config):
    """The Serve application for `cfg.generator.base_model` (on vLLM through Ray Serve LLM with engine vllm)."""
    if cfg.generator.engine == "vllm":
        from .vllm import openai_app

        return openai_app(cfg.with_absolute_paths())
    return ChatModel.options(**cfg.serve.deployment_options("ChatModel")).bind(cfg.with_absolute_paths())


def app(args: AppArgs):
    """Typed application builder: `serve run ecr_ray.serve.llm:app recipe=demo`, or a Serve config's `args:`; the
    deployments must fit the cluster."""
    from .deploy import LLM_NAME, check_fits

    cfg = args.config()
    check_fits(cfg, args.apps or [LLM_NAME])
    return build_app(cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local(cfg: Config, timeout_s: float = 180.0) -> tuple[str, str]:
    """Serve the endpoint in the current Ray cluster as an application of its own (a fresh name); returns its `/v1`
    base URL once it answers, and the application's name, so that the caller deletes only what it started. Serve is
    started on 127.0.0.1 (a free port) when it is not running yet; a running Serve keeps its own HTTP options."""
    import urllib.request

    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:  # Serve runs in this cluster: use its proxy
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        port = ray.get(controller.get_http_config.remote()).port
    except ValueError:  # it does not: start it on loopback
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    name = f"llm-{uuid.uuid4().hex[:8]}"
    serve.run(build_app(cfg), name=name, route_prefix=f"/{name}")
    url = f"http://127.0.0.1:{port}/{name}/v1"
    deadline = time.time() + timeout_s
    while True:  # the proxy answers 404 for a while after the app is RUNNING
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                if r.status == 200:
                    return url, name
        except OSError:
            pass
        if time.time() > deadline:
            serve.delete(name)
            raise TimeoutError(f"LLM endpoint at {url} did not come up in {timeout_s:.0f} s")
        time.sleep(0.5)
