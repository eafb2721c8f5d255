"""A stand-in for Ray Serve LLM's deployment of the generator (`LLMServer:ecr-generator`) on the CPU, without vLLM:
it yields through a DeploymentHandle exactly what the installed Ray Serve LLM (ray 2.60) yields, and generates real
text from the run's merged weights. `ecr_ray/serve/vllm.py` uses it when ECR_VLLM_STANDIN names this module.

Why not Ray's own types: Ray Serve LLM's request/response models subclass vLLM's
(ray/llm/_internal/serve/core/configs/openai_api_models.py:15-71); without vLLM or SGLang that module raises
ImportError ("Neither vLLM nor SGLang is installed"), and so does everything importing it: `ray.serve.llm`,
`ray.serve.llm.openai_api_models`, core/server/llm_server.py, core/server/builder.py. What imports without vLLM is
`LLMConfig` (core/configs/llm_config.py, validated in ecr_ray/serve/vllm.py `llm_deployment`) and Ray's `Batcher`
(utils/batcher.py), used here as LLMServer uses it. The models below carry the fields of vLLM 0.29's
(vllm/entrypoints/openai/completion/protocol.py `CompletionRequest`, `CompletionResponse(Choice)`,
`CompletionStreamResponse`, `CompletionResponseStreamChoice`; vllm/entrypoints/serve/engine/protocol.py
`ErrorResponse`, `ErrorInfo`, `UsageInfo`), and the request refuses fields vLLM does not have.

What `LLMServer.completions` (core/server/llm_server.py:441-466, through `_run_request`, 374-412) yields:
- `stream=True`: `Batcher(engine_stream, interval_ms=50).stream()` (llm_server.py:366-372, 324-331; batcher.py:50-89):
  lists of the engine's items. `VLLMEngine.completions` (engines/vllm/vllm_engine.py:741-747) passes vLLM's completion
  stream on, strings only: `data: {CompletionStreamResponse.model_dump_json(exclude_unset=True)}\\n\\n` per decoded
  delta, then `data: [DONE]\\n\\n` (vLLM completion/serving.py `completion_stream_generator`).
- `stream=False`: one item, the `CompletionResponse` object (vllm_engine.py:754).
- a request vLLM refuses (here: prompt + max_tokens over max_model_len, as vLLM's renderer does): an `ErrorResponse`
  object (vllm_engine.py:737-739, 749-752) as the only item, in a list when streaming (Batcher).

Prompts are tokenized as vLLM does (`add_special_tokens`, default true, for text prompts; token ids as they are) and
every request is appended, with its prompt ids and the generated text, to the JSON-lines file ECR_VLLM_STANDIN_LOG
names, so that tests check what reached the engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from ray.llm._internal.serve.utils.batcher import Batcher
from transformers import AutoModelForCausalLM, AutoTokenizer

LOG_ENV = "ECR_VLLM_STANDIN_LOG"
BATCH_INTERVAL_MS = 50  # MODEL_RESPONSE_BATCH_TIMEOUT_MS (ray/llm/_internal/serve/constants.py:55-56)


class CompletionRequest(BaseModel):
    """vLLM's CompletionRequest fields an OpenAI completion request may carry (a subset; others are refused)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    prompt: list[Annotated[int, Field(ge=0)]] | str
    echo: bool | None = False
    max_tokens: int | None = 16
    n: int = 1
    seed: int | None = None
    stop: str | list[str] | None = []
    stream: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    skip_special_tokens: bool = True
    add_special_tokens: bool = True
    return_token_ids: bool | None = None
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int | None = 0


class CompletionResponseChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    token_ids: list[int] | None = None
    prompt_token_ids: list[int] | None = None


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionResponseChoice]
    usage: UsageInfo


class CompletionResponseStreamChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None


class CompletionStreamResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: str = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionResponseStreamChoice]
    usage: UsageInfo | None = None


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


class LLMServer:
    """The deployment class (ecr_ray/serve/vllm.py names it `LLMServer:ecr-generator`, as Ray Serve LLM does)."""

    def __init__(self, llm_config: dict[str, Any]):
        loading = llm_config["model_loading_config"]
        self.model_id, src = loading["model_id"], loading["model_source"]
        self.max_model_len = int(llm_config["engine_kwargs"]["max_model_len"])
        self.tok = AutoTokenizer.from_pretrained(src)
        self.model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
        self.lock = asyncio.Lock()  # one generate at a time (the replica's CPU)

    async def completions(self, request: CompletionRequest, raw_request_info: Any = None):
        """As LLMServer.completions: an async generator, batched into lists when streaming."""
        engine = self._engine(request)
        return Batcher(engine, interval_ms=BATCH_INTERVAL_MS).stream() if request.stream else engine

    async def check_health(self) -> None:
        return None

    # ---- the engine's side (VLLMEngine.completions + vLLM's completion serving)

    async def _engine(self, request: CompletionRequest):
        if not isinstance(request, CompletionRequest):
            raise TypeError(f"expected a CompletionRequest, got {type(request).__name__}")
        if isinstance(request.prompt, str):
            ids = self.tok(request.prompt, add_special_tokens=request.add_special_tokens)["input_ids"]
        else:
            ids = list(request.prompt)
        if request.model not in (None, self.model_id):
            yield _error(f"The model `{request.model}` does not exist.", "NotFoundError", 404)
            return
        if len(ids) + (request.max_tokens or 0) > self.max_model_len:
            yield _error(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{len(ids) + (request.max_tokens or 0)} tokens ({len(ids)} in the messages, {request.max_tokens} in "
                "the completion).",
                "BadRequestError",
                400,
            )
            return
        async with self.lock:
            new, finish = await asyncio.to_thread(self._generate, ids, request)
        text = self.tok.decode(new, skip_special_tokens=request.skip_special_tokens)
        self._log(request, ids, text)
        want_ids = bool(request.return_token_ids)
        if not request.stream:
            yield CompletionResponse(
                model=self.model_id,
                choices=[
                    CompletionResponseChoice(
                        index=0,
                        text=text,
                        finish_reason=finish,
                        token_ids=new if want_ids else None,
                        prompt_token_ids=ids if want_ids else None,
                    )
                ],
                usage=UsageInfo(prompt_tokens=len(ids), completion_tokens=len(new), total_tokens=len(ids) + len(new)),
            )
            return
        rid, created, sent = f"cmpl-{request.request_id}", int(time.time()), ""
        for i, token in enumerate(new):
            upto = self.tok.decode(new[: i + 1], skip_special_tokens=request.skip_special_tokens)
            last = i == len(new) - 1
            if upto.endswith("\ufffd") and not last:  # a character still incomplete: held back, as vLLM does
                continue
            delta, sent = upto[len(sent) :], upto
            chunk = CompletionStreamResponse(
                id=rid,
                object="text_completion",
                created=created,
                model=self.model_id,
                choices=[
                    CompletionResponseStreamChoice(
                        index=0,
                        text=delta,
                        logprobs=None,
                        finish_reason=finish if last else None,
                        stop_reason=None,
                        prompt_token_ids=ids if want_ids and i == 0 else None,
                        token_ids=[token] if want_ids else None,
                    )
                ],
            )
            yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"
            await asyncio.sleep(0.02)  # tokens come over time: the Batcher's 50 ms lists hold a few each
        yield "data: [DONE]\n\n"

    def _generate(self, ids: list[int], request: CompletionRequest) -> tuple[list[int], str]:
        sample = bool(request.temperature)
        gen: dict[str, Any] = {"max_new_tokens": request.max_tokens or 16, "do_sample": sample}
        if sample:
            gen.update(temperature=request.temperature, top_p=request.top_p or 1.0)
            torch.manual_seed(request.seed if request.seed is not None else 0)
        if request.repetition_penalty:
            gen["repetition_penalty"] = request.repetition_penalty
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), pad_token_id=pad, **gen
            )
        new = out[0, len(ids) :].tolist()
        if new and new[-1] == self.tok.eos_token_id:
            return new[:-1], "stop"
        return new, "length" if len(new) >= gen["max_new_tokens"] else "stop"

    @staticmethod
    def _log(request: CompletionRequest, ids: list[int], text: str) -> None:
        path = os.environ.get(LOG_ENV)
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"stream": bool(request.stream), "prompt_ids": ids, "text": text}) + "\n")


def _error(message: str, kind: str, code: int) -> ErrorResponse:
    return ErrorResponse(error=ErrorInfo(message=message, type=kind, code=code))
