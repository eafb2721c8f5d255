"""The generator on vLLM through Ray Serve LLM (`generator.engine: vllm`; GPU clusters; `pip install "ecr-ray[gpu]"`).

The model runs in Ray Serve LLM's own deployment (`ray.serve.llm.LLMServer`: vLLM's continuous batching and paged KV
cache), loaded from the adapter merged into the base model after training (`<run_dir>/generator/merged`, or the fully
fine-tuned `model/`). The `Generator` deployment the ingress calls stays a small CPU replica: it builds the Eq. 8
prompt of the recommended item (`Prompter`), sends it to the engine through a DeploymentHandle, and composes the
reply exactly as the transformers path does. The `/llm` endpoint is Ray Serve LLM's OpenAI app on the same config.
`llm_config` is a plain dict that Ray's `LLMConfig` validates (the tests check it without a GPU or vLLM).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from ecr_ray.config import Config

SERVED_MODEL = "ecr-generator"


def model_source(cfg: Config) -> str:
    """What vLLM loads: the merged (LoRA) or fully fine-tuned weights of the run."""
    gen = cfg.run_path / "generator"
    return str(gen / ("merged" if cfg.generator.method == "lora" else "model"))


def llm_config(cfg: Config) -> dict[str, Any]:
    """The Ray Serve LLM config of the generator, from the recipe (generator.vllm adds or overrides fields)."""
    g = cfg.generator
    extra = dict(g.vllm)
    engine = {
        "dtype": "float32" if g.dtype == "float32" else "bfloat16",
        "max_model_len": g.max_length + g.max_new_tokens,
        **extra.pop("engine_kwargs", {}),
    }
    out: dict[str, Any] = {
        "model_loading_config": {"model_id": SERVED_MODEL, "model_source": model_source(cfg)},
        "engine_kwargs": engine,
        "deployment_config": extra.pop(
            "deployment_config", {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
        ),
    }
    if cfg.offline:
        out["runtime_env"] = {"env_vars": {"HF_HUB_OFFLINE": "1"}}
    out.update(extra)
    return out


def _llm_config(cfg: Config):
    from ray.serve.llm import LLMConfig

    return LLMConfig(**llm_config(cfg))


def openai_app(cfg: Config) -> serve.Application:
    """The `/llm` application on vLLM: Ray Serve LLM's OpenAI-compatible app."""
    from ray.serve.llm import build_openai_app

    return build_openai_app({"llm_configs": [_llm_config(cfg)]})


@serve.deployment
class VLLMGenerator:
    """The Generator deployment of `engine: vllm`: prompts here, tokens from the vLLM deployment."""

    def __init__(self, cfg: Config, llm: DeploymentHandle):
        from transformers import AutoTokenizer

        from ecr_ray.conversation.predictor import ConversationPredictor
        from ecr_ray.generator.predictor import Prompter

        tok = AutoTokenizer.from_pretrained(model_source(cfg))
        self.prompter = Prompter(tok, *Prompter.sources(cfg), cfg.generator, cfg.seed)
        self.llm, self.gcfg = llm, cfg.generator
        self.conversation = ConversationPredictor.load(cfg)  # on this replica's device; None: templates

    async def recommendation(self, dialogue: list[dict], names: list[str], template: str) -> dict:
        """As the transformers Generator's: the conversation module's u_r, or `template`."""
        import asyncio

        if self.conversation is None:
            return {"text": template, "source": "template"}
        return (await asyncio.to_thread(self.conversation.respond_batch, [dialogue], [names], [template]))[0]

    def _request(self, prompt: str, stream: bool, **gen):
        from ray.serve.llm.openai_api_models import CompletionRequest

        g = self.gcfg
        return CompletionRequest(
            model=SERVED_MODEL,
            prompt=prompt,
            stream=stream,
            max_tokens=gen.get("max_new_tokens", g.max_new_tokens),
            temperature=gen.get("temperature", g.temperature if gen.get("do_sample", g.do_sample) else 0.0),
            top_p=gen.get("top_p", g.top_p),
            repetition_penalty=g.repetition_penalty,
        )

    async def _complete(self, prompt: str, **gen) -> str:
        from ecr_ray.generator.predictor import _clean

        text = ""
        async for out in self.llm.options(stream=True).completions.remote(self._request(prompt, False, **gen)):
            text += out.choices[0].text
        return _clean(text)

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
        from ecr_ray.generator.guard import SentenceStream

        item = int(item_entity_id)
        prompt, _, _ = self.prompter.prompt(item, first_sentence)
        guard = self.prompter.guard
        sentences = SentenceStream(guard, item)
        async for chunk in self.llm.options(stream=True).completions.remote(self._request(prompt, True, **gen)):
            piece = chunk.choices[0].text if hasattr(chunk, "choices") else ""
            for out in (sentences.feed(piece) if guard else [piece]) if piece else []:
                yield out
        for out in sentences.close() if guard else []:
            yield out
        dropped = sentences.dropped
        yield {"checked": bool(guard), "trimmed": bool(dropped), "dropped": dropped, "regenerations": 0}

    def ready(self) -> bool:
        return True


def generator_app(cfg: Config, options: dict) -> serve.Application:
    """The Generator of `engine: vllm`: the prompt deployment bound to the vLLM deployment."""
    from ray.serve.llm import build_llm_deployment

    return VLLMGenerator.options(**options).bind(cfg, build_llm_deployment(_llm_config(cfg)))
