"""The generator on vLLM through Ray Serve LLM (`generator.engine: vllm`; GPU clusters; `pip install "ecr-ray[gpu]"`).

The model runs in Ray Serve LLM's own deployment (`LLMServer:ecr-generator`: vLLM's continuous batching and paged KV
cache), loaded from the adapter merged into the base model by the merge step (`ecr-ray merge`:
`<run_dir>/generator/merged`), or from the fully fine-tuned `model/`. The `VLLMGenerator` deployment the ingress calls
stays a small CPU replica: it builds the Eq. 8 prompt of the recommended item (`Prompter`), tokenizes it exactly as
training did (one BOS: the chat template writes it, and the ids go to vLLM as they are), sends the ids to the engine
through a DeploymentHandle, and composes the reply exactly as the transformers path does. The `/llm` endpoint is Ray
Serve LLM's OpenAI app on the base model (llm_server.py `openai_app`). `llm_config` (serve_spec.py) is a plain dict
that Ray's `LLMConfig` validates. There is no
test switch here: the tests (tests/serve/test_vllm.py) run this module's deployment through Ray Serve LLM's real
`build_llm_deployment` / `LLMServer` and vLLM's protocol types on the CPU, with only the engine standing in, injected
by Ray's own `RAYLLM_VLLM_ENGINE_CLS` and placed on CPUs by `generator.vllm.placement_group_config` (docs/serve.md).

What `LLMServer.completions` yields through a DeploymentHandle (ray 2.60; read by `read_chunks`):
- `stream=True`: lists (Ray's `Batcher`, llm_server.py:366-372, 407-408) of server-sent-event strings
  `data: {CompletionStreamResponse JSON}\\n\\n` (vllm_engine.py:741-747, from vLLM's completion stream), the last one
  `data: [DONE]\\n\\n`; an error inside the stream is an event `data: {"error": {...}}`, one before it an
  `ErrorResponse` object in the list (vllm_engine.py:724-739).
- `stream=False`: one `CompletionResponse` object (vllm_engine.py:754) or `ErrorResponse` (vllm_engine.py:749-752).
Anything else raises `EngineError`: a reply is never silently empty.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from ecr_ray import reply
from ecr_ray.config import Config, GeneratorConfig
from ecr_ray.conversation.predictor import ConversationPredictor
from ecr_ray.generator import merge
from ecr_ray.generator import train as generator_train
from ecr_ray.generator.data import prompt_token_ids
from ecr_ray.generator.guard import SentenceStream
from ecr_ray.generator.predictor import Prompter, _clean
from ecr_ray.serve_spec import SERVED_MODEL, llm_config, llm_deployment_name, model_source, ray_serve_llm


class EngineError(RuntimeError):
    """The vLLM deployment answered with an error, or with something this version of ecr-ray cannot read."""


def check_weights(cfg: Config) -> None:
    """Fail, saying what to run, when the weights vLLM would load are missing or older than the trained adapter."""
    src = model_source(cfg)
    if cfg.generator.method != "lora":
        if not os.path.exists(os.path.join(src, "config.json")):
            raise FileNotFoundError(f"{src} not found: train the generator first (`ecr-ray train_generator`)")
        return
    merged = merge.STAGE.read_manifest(cfg)
    trained = generator_train.STAGE.read_manifest(cfg)
    if merged is None or not os.path.exists(os.path.join(src, "config.json")):
        raise FileNotFoundError(
            f"{src} not found: engine vllm serves the LoRA adapter merged into the base model; run the merge job "
            f"first: `ecr-ray merge --recipe {cfg.recipe} --run-dir {cfg.run_path}`"
        )
    if trained is None or merged.get("adapter_key") != trained.get("key"):
        raise FileNotFoundError(
            f"{src} was merged from another adapter than the one in {cfg.run_path / 'generator'} (retrained since): "
            f"run the merge job again: `ecr-ray merge --recipe {cfg.recipe} --run-dir {cfg.run_path}`"
        )


def llm_deployment(cfg: Config) -> serve.Application:
    """Ray Serve LLM's deployment of the generator (`build_llm_deployment`), named as the written Serve config says."""
    serve_llm = ray_serve_llm()
    app = serve_llm.build_llm_deployment(serve_llm.LLMConfig(**llm_config(cfg)))
    name = llm_deployment_name(SERVED_MODEL)
    if app._bound_deployment.name != name:  # the Serve config file names it: `serve deploy` fails on a mismatch
        raise RuntimeError(
            f"Ray Serve LLM named the generator's deployment {app._bound_deployment.name!r}, not {name!r}: update "
            f"ecr_ray/serve_spec.py llm_deployment_name for this Ray version"
        )
    return app


# ----------------------------------------------------------------------------- what the LLM deployment yields


def read_chunks(item: Any) -> Iterator[dict | None]:
    """The completion objects (dicts) in one item `LLMServer.completions` yielded, None for `data: [DONE]`; an error
    the engine reported, or a shape this code does not know, raises EngineError."""
    if isinstance(item, list):
        for x in item:
            yield from read_chunks(x)
    elif isinstance(item, str):
        for event in item.split("\n\n"):
            event = event.strip()
            if not event:
                continue
            if not event.startswith("data:"):
                raise EngineError(f"unexpected server-sent event from the vLLM deployment: {event[:200]!r}")
            data = event[len("data:") :].strip()
            if data == "[DONE]":
                yield None
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                raise EngineError(f"the vLLM deployment sent an event that is not JSON: {data[:200]!r}") from None
            yield _completion(obj)
    elif hasattr(item, "model_dump"):  # CompletionResponse / ErrorResponse (pydantic)
        yield _completion(item.model_dump())
    else:
        raise EngineError(f"unexpected item from the vLLM deployment: {type(item).__name__}: {str(item)[:200]}")


def _completion(obj: Any) -> dict:
    if not isinstance(obj, dict):
        raise EngineError(f"unexpected completion from the vLLM deployment: {str(obj)[:200]}")
    if obj.get("error") is not None or obj.get("object") == "error":
        err = obj["error"] if isinstance(obj.get("error"), dict) else obj
        raise EngineError(f"vLLM: {err.get('message', err)} (type {err.get('type')}, code {err.get('code')})")
    choices = obj.get("choices")
    ok = isinstance(choices, list) and all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in choices)
    if not ok:
        raise EngineError(f"a completion from the vLLM deployment without choices[].text: {str(obj)[:200]}")
    return obj


def chunk_text(obj: dict) -> str:
    """The text of choice 0 in one completion (a stream's usage-only chunk has none)."""
    return "".join(c["text"] for c in obj["choices"] if c.get("index", 0) == 0)


def completion_request(request_type, tokenizer, g: GeneratorConfig, prompt: str, stream: bool, **gen):
    """The completion request of one rendered prompt: its token ids as training saw them (`prompt_token_ids`: the chat
    template's BOS and no other), never text that vLLM would tokenize again with special tokens (a second BOS)."""
    sample = gen.get("do_sample", g.do_sample) or "temperature" in gen
    out = {
        "model": SERVED_MODEL,
        "prompt": prompt_token_ids(tokenizer, prompt),
        "stream": stream,
        "max_tokens": gen.get("max_new_tokens", g.max_new_tokens),
        "temperature": gen.get("temperature", g.temperature) if sample else 0.0,
        "top_p": gen.get("top_p", g.top_p),
        "repetition_penalty": g.repetition_penalty,
    }
    if gen.get("seed") is not None:
        out["seed"] = int(gen["seed"])
    return request_type(**out)


# ----------------------------------------------------------------------------- the Generator deployment


@serve.deployment
class VLLMGenerator:
    """The Generator deployment of `engine: vllm`: prompts here, tokens from the vLLM deployment."""

    def __init__(self, cfg: Config, llm: DeploymentHandle):
        from transformers import AutoTokenizer

        check_weights(cfg)
        tok = AutoTokenizer.from_pretrained(model_source(cfg))
        self.prompter = Prompter(tok, *Prompter.sources(cfg), cfg.generator, cfg.seed)
        # stream=True for every call: `completions` returns an async generator, streaming or not, and Ray's own
        # router calls it this way too (ray/llm/_internal/serve/core/ingress/ingress.py:306-316).
        self.llm, self.gcfg = llm.options(stream=True), cfg.generator
        self.Request = ray_serve_llm().openai_api_models.CompletionRequest  # vLLM's (openai_api_models.py:139)
        self.conversation = ConversationPredictor.load(cfg)  # on this replica's device; None: templates

    async def recommendation(self, dialogue: list[dict], names: list[str], template: str) -> dict:
        """As the transformers Generator's: the conversation module's u_r, or `template`."""
        return (await asyncio.to_thread(reply.recommendations, self.conversation, [dialogue], [names], [template]))[0]

    def _request(self, prompt: str, stream: bool, **gen):
        return completion_request(self.Request, self.prompter.tok, self.gcfg, prompt, stream, **gen)

    async def _complete(self, prompt: str, **gen) -> str:
        texts = []
        async for item in self.llm.completions.remote(self._request(prompt, False, **gen)):
            texts += [chunk_text(c) for c in read_chunks(item) if c is not None]
        if len(texts) != 1:
            raise EngineError(f"the vLLM deployment answered a completion with {len(texts)} responses, expected 1")
        return _clean(texts[0])

    async def respond(self, item_entity_id: int, first_sentence: str, **gen) -> dict:
        """As `GeneratorPredictor.respond_batch`: the reply guard, and another (sampled) try when it empties u_e."""
        p, item = self.prompter, int(item_entity_id)
        prompt, first, knowledge = p.prompt(item, first_sentence)
        answer = p.reply(item, first, knowledge, await self._complete(prompt, **gen))
        tries = 0
        while p.needs_retry(answer, tries):
            tries += 1
            text = await self._complete(prompt, **p.retry_kwargs(gen, tries))
            answer = p.reply(item, first, knowledge, text, answer["guard"]["dropped"], tries)
        return answer

    async def stream(self, item_entity_id: int, first_sentence: str, **gen):
        """Token chunks, or with the reply guard each sentence it passes; then the guard's verdict (a dict)."""
        item = int(item_entity_id)
        prompt, first, _ = self.prompter.prompt(item, first_sentence)
        guard = self.prompter.guard
        sentences = SentenceStream(guard, item, first)
        done = False
        async for batch in self.llm.completions.remote(self._request(prompt, True, **gen)):
            for chunk in read_chunks(batch):
                if chunk is None:
                    done = True
                    continue
                piece = chunk_text(chunk)
                for out in (sentences.feed(piece) if guard else [piece]) if piece else []:
                    yield out
        if not done:
            raise EngineError("the vLLM deployment's stream ended without `data: [DONE]`")
        for out in sentences.close() if guard else []:
            yield out
        dropped = sentences.dropped
        yield {"checked": bool(guard), "trimmed": bool(dropped), "dropped": dropped, "regenerations": 0}

    def ready(self) -> bool:
        return True


def generator_app(cfg: Config, options: dict) -> serve.Application:
    """The Generator of `engine: vllm`: the prompt deployment bound to the vLLM deployment."""
    return VLLMGenerator.options(**options).bind(cfg, llm_deployment(cfg))
