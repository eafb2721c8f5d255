"""A stand-in for vLLM's engine inside Ray Serve LLM's real deployment: the same answers as `VLLMEngine`, generated
with transformers on the CPU from the run's merged weights.

What is real in the tests that use it (`tests/serve/test_vllm.py`): Ray Serve LLM's `build_llm_deployment`,
`LLMServer` (request ids, the 50 ms `Batcher` that turns a stream into lists, health checks), the `LLMConfig` /
`VLLMEngineConfig` and the placement group Ray builds from `generator.vllm`, and vLLM's own protocol models
(`CompletionRequest`, `CompletionResponse`, `CompletionStreamResponse`, `ErrorResponse`, through Ray's subclasses in
ray/llm/_internal/serve/core/configs/openai_api_models.py:139-148), imported from the vLLM wheel that
`make vllm-types` installs without its dependencies into `.vllm-types` (vLLM's compiled kernels are never loaded).
What stands in: only `VLLMEngine` (ray/llm/_internal/serve/engines/vllm/vllm_engine.py), which starts vLLM's
`AsyncLLM` on a GPU. `LLMServer` takes its engine class from Ray's own switch `RAYLLM_VLLM_ENGINE_CLS`
(core/server/llm_server.py:296-307), which the tests set in the application's runtime_env to
`tests.serve.vllm_standin.TransformersEngine`, a subclass of Ray's engine protocol `LLMEngine`
(core/engine/protocol.py).

What `VLLMEngine.completions` yields (vllm_engine.py:719-754), and so this engine:
- `stream=True`: strings, one server-sent event per decoded delta, `data: {CompletionStreamResponse JSON with
  exclude_unset}\\n\\n`, then `data: [DONE]\\n\\n` (vLLM's vllm/entrypoints/openai/completion/serving.py:281-501
  `completion_stream_generator`, passed on as they are);
- `stream=False`: one `CompletionResponse` (vllm_engine.py:754, from serving.py:503-650
  `request_output_to_completion_response`);
- a request vLLM refuses: one `ErrorResponse` (vllm_engine.py:737-752), built by vLLM's own `create_error_response`
  (vllm/entrypoints/serve/exception_handling/error_response.py) from the exception vLLM raises: the context-length
  check is vLLM's `TokenizeParams.apply_post_tokenization` (vllm/renderers/params.py:453-480) with the parameters
  `CompletionRequest.build_tok_params` gives it (completion/protocol.py:263-274), an unknown model the NotFoundError
  of serve/engine/serving.py:40-64. Sampling settings are read through vLLM's `CompletionRequest.to_sampling_params`
  (completion/protocol.py:313), so greedy is what vLLM calls greedy (temperature 0).
Fields this engine does not implement (n > 1, echo, logprobs, stop strings, ...) are refused with vLLM's 501
(NotImplementedError), never ignored. Chat, embeddings and transcriptions answer the same way.

Token-id prompts go to the model as they are; text prompts are tokenized as vLLM does (`add_special_tokens`, default
true). Every completion is appended, with its prompt ids and generated text, to the JSON-lines file ECR_VLLM_STANDIN_LOG
names, so that the tests check what reached the engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import types
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Any

import torch
from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
from ray.llm._internal.serve.core.configs.openai_api_models import (
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    ErrorInfo,
    ErrorResponse,
)
from ray.llm._internal.serve.core.engine.protocol import LLMEngine
from transformers import AutoModelForCausalLM, AutoTokenizer
from vllm.entrypoints.openai.completion.protocol import CompletionResponseChoice, CompletionResponseStreamChoice
from vllm.entrypoints.serve.engine.protocol import UsageInfo
from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
from vllm.exceptions import VLLMClientError, VLLMNotFoundError
from vllm.sampling_params import SamplingType

LOG_ENV = "ECR_VLLM_STANDIN_LOG"
ENGINE_CLS = f"{__name__}.TransformersEngine"
"""What the tests put in RAYLLM_VLLM_ENGINE_CLS (ray/llm/_internal/serve/constants.py)."""

# What this engine implements of a CompletionRequest; a request setting any other field is refused (501).
SUPPORTED_FIELDS = {
    "model",
    "prompt",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "seed",
    "skip_special_tokens",
    "add_special_tokens",
    "return_token_ids",
    "request_id",
}


def _error(exc: Exception | str, err_type: str = "BadRequestError", status: HTTPStatus = HTTPStatus.BAD_REQUEST):
    """Ray's ErrorResponse of what vLLM answers for `exc`, converted as VLLMEngine does (vllm_engine.py:749-752)."""
    vllm_error = create_error_response(exc, err_type=err_type, status_code=status)
    return ErrorResponse(error=ErrorInfo(**vllm_error.error.model_dump()))


class TransformersEngine(LLMEngine):
    """Ray Serve LLM's engine protocol, answered by a transformers model on the CPU (one request at a time)."""

    def __init__(self, llm_config: LLMConfig):
        self.model_id = llm_config.model_id
        self.source = llm_config.model_loading_config.model_source
        self.max_model_len = int(llm_config.engine_kwargs["max_model_len"])
        self.tok = self.model = None
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        self.tok = AutoTokenizer.from_pretrained(self.source)
        model = await asyncio.to_thread(AutoModelForCausalLM.from_pretrained, self.source, dtype=torch.float32)
        self.model = model.eval()

    def routing_stats(self) -> dict:
        return {}

    async def reset_prefix_cache(self) -> None:
        return None

    async def resolve_lora(self, lora_model):
        raise NotImplementedError("the CPU stand-in engine serves no LoRA adapters (the merged weights only)")

    async def chat(self, request, raw_request_info=None):
        yield _error(NotImplementedError("chat: the CPU stand-in engine serves completions only"))

    async def embeddings(self, request, raw_request_info=None):
        yield _error(NotImplementedError("embeddings: the CPU stand-in engine serves completions only"))

    async def transcriptions(self, request, raw_request_info=None):
        yield _error(NotImplementedError("transcriptions: the CPU stand-in engine serves completions only"))

    async def completions(
        self, request: CompletionRequest, raw_request_info: Any = None
    ) -> AsyncGenerator[str | CompletionResponse | ErrorResponse, None]:
        if not isinstance(request, CompletionRequest):
            raise TypeError(f"expected Ray Serve LLM's CompletionRequest, got {type(request).__name__}")
        unsupported = sorted(set(request.model_fields_set) - SUPPORTED_FIELDS)
        if unsupported or request.n != 1:
            yield _error(NotImplementedError(f"the CPU stand-in engine does not implement {unsupported or ['n']}"))
            return
        if request.model not in (None, self.model_id):  # vLLM's _check_model (serve/engine/serving.py:40-64)
            msg = f"The model `{request.model}` does not exist."
            yield _error(VLLMNotFoundError(msg))
            return
        prompt = request.prompt
        if isinstance(prompt, str):
            ids = self.tok(prompt, add_special_tokens=request.add_special_tokens)["input_ids"]
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)
        else:
            yield _error(NotImplementedError("the CPU stand-in engine takes one prompt (text or token ids)"))
            return
        # vLLM's own checks: the context length (only max_model_len is read from the model config), sampling.
        try:
            params = request.build_tok_params(types.SimpleNamespace(max_model_len=self.max_model_len))
            ids = params.apply_post_tokenization(None, {"prompt_token_ids": ids})["prompt_token_ids"]
            max_tokens = min(request.max_tokens or self.max_model_len, self.max_model_len - len(ids))
            sampling = request.to_sampling_params(max_tokens, {})
        except (VLLMClientError, ValueError, TypeError) as e:  # as VLLMEngine catches them (vllm_engine.py:737)
            yield _error(e)
            return
        async with self.lock:
            new, finish = await asyncio.to_thread(self._generate, ids, sampling)
        text = self.tok.decode(new, skip_special_tokens=request.skip_special_tokens)
        self._log(request, ids, text)
        want_ids = bool(request.return_token_ids)
        if not request.stream:
            yield CompletionResponse(
                id=f"cmpl-{request.request_id}",
                model=self.model_id,
                choices=[
                    CompletionResponseChoice(
                        index=0,
                        text=text,
                        finish_reason=finish,
                        stop_reason=None,
                        token_ids=new if want_ids else None,
                        prompt_token_ids=ids if want_ids else None,
                    )
                ],
                usage=UsageInfo(prompt_tokens=len(ids), completion_tokens=len(new), total_tokens=len(ids) + len(new)),
            )
            return
        async for event in self._stream(request, ids, new, finish, want_ids):
            yield event

    async def _stream(self, request: CompletionRequest, ids: list[int], new: list[int], finish: str, want_ids: bool):
        """One event per decoded delta, as completion_stream_generator writes them (serving.py:431-458)."""
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

    def _generate(self, ids: list[int], sampling) -> tuple[list[int], str]:
        """transformers' generate with vLLM's sampling parameters; finish reason as vLLM's ("stop" at EOS)."""
        gen: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "do_sample": False}
        if sampling.sampling_type != SamplingType.GREEDY:
            gen.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k and sampling.top_k > 0:
                gen["top_k"] = sampling.top_k
            torch.manual_seed(sampling.seed if sampling.seed is not None else 0)
        if sampling.repetition_penalty != 1.0:
            gen["repetition_penalty"] = sampling.repetition_penalty
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
