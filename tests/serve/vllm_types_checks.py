"""The checks of `generator.engine: vllm` that need vLLM's types in the test process itself: Ray Serve LLM's real
`build_llm_deployment` (the deployment names and resources of the written Serve config), vLLM's protocol models read
by `read_chunks`, the request `completion_request` builds, and the stand-in engine's answers (tests/serve/
vllm_standin.py) against what `VLLMEngine` yields.

Not collected with the suite (the file name is not test_*): `tests/serve/test_vllm.py` runs it in a pytest process of
its own with `.vllm-types` (`make vllm-types`) on PYTHONPATH, so that no other test runs with vllm importable (vLLM
registers its model configs with transformers when imported).
"""

from __future__ import annotations

import asyncio

import pytest
import yaml
from ray._common.utils import import_attr
from ray.llm._internal.serve.core.configs.openai_api_models import (  # what VLLMEngine yields
    CompletionResponse,
    CompletionStreamResponse,
    ErrorResponse,
)
from ray.llm._internal.serve.core.engine.protocol import LLMEngine
from ray.llm._internal.serve.core.server.llm_server import LLMServer
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.openai_api_models import CompletionRequest  # what VLLMGenerator sends
from ray.serve.schema import ServeDeploySchema
from tokenizers import processors
from transformers import AutoTokenizer
from vllm.entrypoints.openai.completion.protocol import CompletionResponseChoice, CompletionResponseStreamChoice
from vllm.entrypoints.serve.engine.protocol import UsageInfo

from ecr_ray.config import load_config
from ecr_ray.generator.data import encode, prompt_token_ids
from ecr_ray.hub import resolve
from ecr_ray.jobs import serve as serve_job
from ecr_ray.prompts import generation_messages, render_prompt
from ecr_ray.serve import deploy, vllm
from ecr_ray.serve.vllm import SERVED_MODEL, EngineError, chunk_text, completion_request, read_chunks
from tests.serve import test_vllm
from tests.serve import vllm_standin as standin

CPU_BUNDLES = {"bundles": [{"CPU": 0.25}], "strategy": "PACK"}


# ----------------------------------------------------------------------------- deployment names and resources


def test_the_written_config_names_the_deployments_ray_serve_llm_builds(tmp_path):
    """Built from the written file as `serve deploy` builds it (import path + args), Ray Serve LLM's builder
    included: the deployment names must be the file's, or Serve fails with "Deployment ... does not exist"."""
    path = tmp_path / "serve.yaml"
    argv = ["--recipe", "paper", "--generator.engine=vllm", "--serve.check_resources=false"]
    assert serve_job.main([*argv, "--write-config", str(path)]) == 0
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    ecr = next(a for a in config["applications"] if a["name"] == "ecr")
    application = call_user_app_builder_with_args_if_necessary(import_attr(ecr["import_path"]), ecr["args"])
    built = build_app(application, name="ecr")
    names = [d["name"] for d in ecr["deployments"]]
    assert sorted(d.name for d in built.deployments) == sorted(names)
    assert names == ["ECRIngress", "EmotionDetector", "Recommender", "VLLMGenerator", "LLMServer:ecr-generator"]
    llm = next(d for d in built.deployments if d.name == "LLMServer:ecr-generator")
    assert llm.func_or_class is LLMServer  # Ray's own server class, not a stand-in


def test_org_and_dotted_model_ids_are_named_as_ray_names_them():
    for model_id in (SERVED_MODEL, "meta-llama/Llama-2-7b-chat-hf", "org/model.v1.5"):
        conf = {"model_loading_config": {"model_id": model_id}, "placement_group_config": CPU_BUNDLES}
        assert build_llm_deployment(LLMConfig(**conf))._bound_deployment.name == vllm.llm_deployment_name(model_id)


@pytest.mark.parametrize(
    "extra",
    [
        {},  # the default: one GPU per rank
        {"engine_kwargs": {"tensor_parallel_size": 2}, "accelerator_type": "A10G"},
        {"placement_group_config": CPU_BUNDLES, "deployment_config": {"ray_actor_options": {"num_cpus": 0.5}}},
        {
            "placement_group_config": {"bundle_per_worker": {"CPU": 2, "GPU": 1}},
            "engine_kwargs": {"pipeline_parallel_size": 2},
        },
    ],
)
def test_the_resource_check_counts_what_ray_serve_llm_reserves(extra):
    """deploy.demand (the check `ecr-ray serve` runs before deploying) against the placement group bundles Ray's
    LLMServer.get_deployment_options asks Serve for."""
    cfg = load_config("paper", {"generator.engine": "vllm", "generator.vllm": extra})
    options = LLMServer.get_deployment_options(LLMConfig(**vllm.llm_config(cfg)))
    bundles = options["placement_group_bundles"]
    replicas, cpus, gpus = deploy.demand(cfg, ["ecr"])["LLMServer:ecr-generator"]
    assert replicas == 1
    assert cpus == pytest.approx(sum(b.get("CPU", 0) for b in bundles))
    assert gpus == pytest.approx(sum(b.get("GPU", 0) for b in bundles))


# ----------------------------------------------------------------------------- what LLMServer.completions yields


def _stream_event(text: str, finish: str | None = None) -> str:
    """An event as vLLM's completion_stream_generator writes it (completion/serving.py:431-458)."""
    chunk = CompletionStreamResponse(
        model=SERVED_MODEL,
        choices=[CompletionResponseStreamChoice(index=0, text=text, finish_reason=finish, stop_reason=None)],
    )
    return f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"


def _texts(items) -> tuple[str, bool]:
    chunks = [c for item in items for c in read_chunks(item)]
    return "".join(chunk_text(c) for c in chunks if c is not None), None in chunks


def test_a_stream_of_batched_sse_strings_is_read_whole():
    """The bug this replaces read `chunk.choices[0].text if hasattr(chunk, "choices")`: every list → ""."""
    items = [
        [_stream_event("I think"), _stream_event(" you'll")],
        [_stream_event(" love it."), _stream_event("", "stop")],
        ["data: [DONE]\n\n"],
    ]
    assert not any(hasattr(i, "choices") for i in items)
    assert _texts(items) == ("I think you'll love it.", True)
    usage = CompletionStreamResponse(model=SERVED_MODEL, choices=[], usage=UsageInfo(prompt_tokens=3))
    # the final usage chunk, as vLLM dumps it (serving.py:479-488): no text
    assert _texts([[f"data: {usage.model_dump_json(exclude_unset=False, exclude_none=True)}\n\n"]]) == ("", False)


def test_a_non_stream_answer_is_one_completion_response():
    resp = CompletionResponse(
        model=SERVED_MODEL,
        choices=[CompletionResponseChoice(index=0, text="A fun film.", finish_reason="stop")],
        usage=UsageInfo(prompt_tokens=5, completion_tokens=4, total_tokens=9),
    )
    assert _texts([resp]) == ("A fun film.", False)


@pytest.mark.parametrize(
    "item, message",
    [
        (standin._error(ValueError("This model's maximum context length is 640 tokens.")), "640 tokens"),
        ([standin._error("no such model", "NotFoundError")], "no such model"),
        ('data: {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}\n\n', "CUDA"),
        ('data: {"object": "error", "message": "old-style error", "code": 400}\n\n', "old-style"),
        ("data: {not json\n\n", "not JSON"),
        ("event: ping\n\n", "unexpected server-sent event"),
        ('data: {"id": "x", "choices": [{"index": 0}]}\n\n', "without choices"),
        (42, "unexpected item"),
        ([b"data: [DONE]"], "unexpected item"),
    ],
)
def test_errors_and_unknown_shapes_raise_instead_of_an_empty_reply(item, message):
    assert not isinstance(item, ErrorResponse) or item.error.code in (400, 404)
    with pytest.raises(EngineError, match=message):
        _texts([item])


# ----------------------------------------------------------------------------- the token ids the engine gets

LLAMA2_TEMPLATE = (  # Llama-2-chat's layout: the template writes <s> itself
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}[INST] <<SYS>>\n{{ m['content'] }}\n"
    "<</SYS>>\n\n{% elif m['role'] == 'user' %}{{ m['content'] }} [/INST]{% else %} {{ m['content'] }} "
    "{{ eos_token }}{% endif %}{% endfor %}"
)


def test_the_engine_gets_the_prompt_ids_training_saw_with_one_bos():
    """A Llama-2-style tokenizer (its chat template writes BOS, and it adds one with add_special_tokens) built from
    the embedded model's: vLLM given the prompt as text would see two BOS; the request carries training's ids."""
    tok = AutoTokenizer.from_pretrained(resolve("smollm2"))
    bos = tok.bos_token
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.bos_token_id)]
    )
    tok.chat_template = LLAMA2_TEMPLATE
    msgs = generation_messages("Toy Story (1995)", ["Tom Hanks"], ["Toy Story's genre is Animation"], "Try it!")
    prompt = render_prompt(tok, msgs)
    assert prompt.startswith(bos)
    as_text = tok(prompt)["input_ids"]
    assert as_text[:2] == [tok.bos_token_id] * 2  # what vLLM would tokenize from text (add_special_tokens=True)
    g = load_config("paper").generator
    req = completion_request(CompletionRequest, tok, g, prompt, True, max_new_tokens=12)
    training = encode(tok, msgs, "A great film.", max_length=4096)
    n_prompt = training["labels"].count(-100)
    assert req.prompt == training["input_ids"][:n_prompt] == prompt_token_ids(tok, prompt)
    assert req.prompt[0] == tok.bos_token_id and req.prompt[1] != tok.bos_token_id
    assert req.stream and req.max_tokens == 12 and req.temperature == 0.0 and req.model == SERVED_MODEL
    sampling = req.to_sampling_params(12, {})  # vLLM's reading of it: greedy, the recipe's repetition penalty
    assert sampling.temperature == 0.0 and sampling.repetition_penalty == g.repetition_penalty


# ----------------------------------------------------------------------------- the stand-in engine's answers


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The stand-in engine on the embedded SmolLM2, as LLMServer starts it (a context of 64 tokens)."""
    conf = LLMConfig(
        model_loading_config={"model_id": SERVED_MODEL, "model_source": resolve("smollm2")},
        engine_kwargs={"max_model_len": 64},
        placement_group_config=CPU_BUNDLES,
    )
    e = standin.TransformersEngine(conf)
    asyncio.run(e.start())
    return e


def _run(engine, **request) -> list:
    async def collect():
        return [x async for x in engine.completions(CompletionRequest(**request))]

    return asyncio.run(collect())


def test_the_stand_in_answers_as_vllm_engine_does(engine):
    ids = engine.tok("A film about toys:")["input_ids"]
    (whole,) = _run(engine, model=SERVED_MODEL, prompt=ids, max_tokens=6, temperature=0.0)
    assert isinstance(whole, CompletionResponse) and whole.usage.prompt_tokens == len(ids)
    events = _run(engine, model=SERVED_MODEL, prompt=ids, max_tokens=6, temperature=0.0, stream=True)
    assert all(isinstance(e, str) and e.startswith("data: ") and e.endswith("\n\n") for e in events)
    assert events[-1] == "data: [DONE]\n\n"
    chunks = [CompletionStreamResponse.model_validate_json(e[len("data: ") :]) for e in events[:-1]]
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text != ""  # greedy: the same text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_the_stand_in_refuses_as_vllm_does(engine):
    ids = engine.tok("A film about toys:")["input_ids"]
    (too_long,) = _run(engine, model=SERVED_MODEL, prompt=ids * 20, max_tokens=6)
    assert isinstance(too_long, ErrorResponse) and too_long.error.code == 400
    assert "maximum context length is 64 tokens" in too_long.error.message  # vLLM's own message
    (unknown,) = _run(engine, model="other", prompt=ids)
    assert unknown.error.code == 404 and "`other` does not exist" in unknown.error.message
    (unsupported,) = _run(engine, model=SERVED_MODEL, prompt=ids, logprobs=2)
    assert unsupported.error.code == 501 and "logprobs" in unsupported.error.message
    with pytest.raises(EngineError, match="maximum context length"):
        _texts([too_long])


def test_the_stand_in_is_what_ray_s_engine_switch_loads():
    """LLMServer's RAYLLM_VLLM_ENGINE_CLS import (llm_server.py:296-307) gives a complete LLMEngine."""
    assert issubclass(import_attr(standin.ENGINE_CLS), LLMEngine)
    assert (standin.ENGINE_CLS, standin.LOG_ENV) == (test_vllm.ENGINE_CLS, test_vllm.LOG_ENV)  # the names it sets
