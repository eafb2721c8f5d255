"""`generator.engine: vllm` on the CPU, without vLLM: the Ray Serve LLM config validated by Ray's own LLMConfig, what
the LLM deployment yields read as Ray Serve LLM yields it, the deployment names of the written Serve config, the token
ids the engine receives, the merge step, and the paper recipe's written ECR application served through real Ray Serve
with a stand-in for Ray Serve LLM's deployment (tests/serve/vllm_standin.py: its shapes cited from the installed Ray)
generating real text from the merged tiny generator."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import ray
import requests
import yaml
from ray._common.utils import import_attr
from ray.llm._internal.serve.core.configs.llm_config import LLMConfig  # ray.serve.llm imports vLLM itself
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.schema import ServeDeploySchema
from tokenizers import processors
from transformers import AutoTokenizer

from ecr_ray import artifacts, llm_server
from ecr_ray.config import PROJECT_ROOT, ConfigError, load_config
from ecr_ray.generator.data import encode, prompt_token_ids
from ecr_ray.generator.train import fit as train_generator
from ecr_ray.hub import resolve
from ecr_ray.jobs import serve as serve_job
from ecr_ray.pipeline import STEPS
from ecr_ray.prompts import generation_messages, render_prompt
from ecr_ray.serve import vllm
from ecr_ray.serve.vllm import (
    SERVED_MODEL,
    EngineError,
    check_weights,
    chunk_text,
    completion_request,
    llm_config,
    llm_deployment_name,
    read_chunks,
)
from tests.ray_cluster import LocalCluster, free_port
from tests.serve import vllm_standin as standin
from tests.serve.conftest import TINY

RAY_LLM = Path(ray.__file__).parent / "llm" / "_internal" / "serve"
STAGE_DIRS = ("tables", "emotions", "reviews", "recommender", "conversation")


def _validated(cfg) -> dict:
    return LLMConfig(**llm_config(cfg)).model_dump(exclude_unset=True)


# ----------------------------------------------------------------------------- the config Ray Serve LLM gets


def test_paper_recipe_on_vllm_serves_the_merged_adapter_in_bf16():
    cfg = load_config(
        "paper",
        {
            "generator.engine": "vllm",
            "offline": True,
            "generator.vllm": {"engine_kwargs": {"tensor_parallel_size": 2}, "accelerator_type": "A10G"},
        },
    )
    c = _validated(cfg)
    assert c["model_loading_config"] == {
        "model_id": SERVED_MODEL,
        "model_source": "/mnt/shared/ecr-runs/paper/generator/merged",
    }
    assert c["engine_kwargs"] == {"dtype": "bfloat16", "max_model_len": 512 + 128, "tensor_parallel_size": 2}
    assert c["accelerator_type"] == "A10G"
    assert c["runtime_env"] == {"env_vars": {"HF_HUB_OFFLINE": "1"}}  # replicas load from the shared cache only


def test_the_llm_endpoint_on_vllm_serves_the_base_model_under_the_id_the_labeller_sends():
    cfg = load_config("paper", {"generator.engine": "vllm"})
    c = LLMConfig(**llm_server.base_llm_config(cfg)).model_dump(exclude_unset=True)
    assert c["model_loading_config"] == {
        "model_id": "meta-llama/Llama-2-7b-chat-hf",
        "model_source": "meta-llama/Llama-2-7b-chat-hf",  # from the shared HF cache (HF_HUB_OFFLINE=1)
    }


def test_full_fine_tuning_serves_the_model_folder_and_float32_stays_float32(tmp_path):
    cfg = load_config(
        "demo",
        {
            "run_dir": str(tmp_path),
            "generator.engine": "vllm",
            "generator.method": "full",
            "generator.dtype": "float32",
        },
    )
    c = _validated(cfg)
    assert c["model_loading_config"]["model_source"] == str(tmp_path / "generator" / "model")
    assert c["engine_kwargs"]["dtype"] == "float32" and "runtime_env" not in c


def test_bad_engine_settings_name_the_field():
    with pytest.raises(ConfigError, match="generator.engine: expected transformers|vllm"):
        load_config("demo", {"generator.engine": "tgi"})
    with pytest.raises(ConfigError, match=r"generator.vllm: unknown field\(s\) \['engine_kwarg'\]"):
        load_config("demo", {"generator.vllm": {"engine_kwarg": {}}})


def test_the_llm_deployment_is_named_as_the_installed_ray_serve_llm_names_it():
    """builder.py cannot be imported without vLLM: its naming function is run from the installed source."""
    source = (RAY_LLM / "core" / "server" / "builder.py").read_text()
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "_get_deployment_name")
    scope: dict = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "builder.py", "exec"), scope)
    assert 'name_prefix = name_prefix or f"{deployment_cls.__name__}:"' in source
    assert 'deployment_options["name"] = name_prefix + deployment_name' in source
    for model_id in (SERVED_MODEL, "meta-llama/Llama-2-7b-chat-hf", "org/model.v1.5"):
        ray_name = "LLMServer:" + scope["_get_deployment_name"](types.SimpleNamespace(model_id=model_id))
        assert llm_deployment_name(model_id) == ray_name


# ----------------------------------------------------------------------------- what LLMServer.completions yields


def _stream_event(text: str, finish: str | None = None) -> str:
    chunk = standin.CompletionStreamResponse(
        model=SERVED_MODEL,
        choices=[standin.CompletionResponseStreamChoice(index=0, text=text, finish_reason=finish, stop_reason=None)],
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
    usage = standin.CompletionStreamResponse(model=SERVED_MODEL, choices=[], usage=standin.UsageInfo(prompt_tokens=3))
    assert _texts([[f"data: {usage.model_dump_json()}\n\n"]]) == ("", False)  # a usage chunk carries no text


def test_a_non_stream_answer_is_one_completion_response():
    resp = standin.CompletionResponse(
        model=SERVED_MODEL,
        choices=[standin.CompletionResponseChoice(index=0, text="A fun film.", finish_reason="stop")],
        usage=standin.UsageInfo(prompt_tokens=5, completion_tokens=4, total_tokens=9),
    )
    assert _texts([resp]) == ("A fun film.", False)


@pytest.mark.parametrize(
    "item, message",
    [
        (standin._error("This model's maximum context length is 640 tokens.", "BadRequestError", 400), "640 tokens"),
        ([standin._error("no such model", "NotFoundError", 404)], "no such model"),
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
    req = completion_request(standin.CompletionRequest, tok, g, prompt, True, max_new_tokens=12)
    training = encode(tok, msgs, "A great film.", max_length=4096)
    n_prompt = training["labels"].count(-100)
    assert req.prompt == training["input_ids"][:n_prompt] == prompt_token_ids(tok, prompt)
    assert req.prompt[0] == tok.bos_token_id and req.prompt[1] != tok.bos_token_id
    assert req.stream and req.max_tokens == 12 and req.temperature == 0.0 and req.model == SERVED_MODEL


# ----------------------------------------------------------------------------- deployment names (row 4)


@pytest.mark.parametrize("recipe, engine", [("demo", "transformers"), ("paper", "transformers"), ("paper", "vllm")])
def test_the_written_config_names_the_deployments_its_applications_hold(recipe, engine, tmp_path, monkeypatch):
    """Built from the written file as `serve deploy` builds it (import path + args): the deployment names must be the
    file's, or Serve fails with "Deployment ... does not exist" (ServeDeploySchema does not check it)."""
    monkeypatch.setenv(vllm.STANDIN_ENV, standin.__name__)  # Ray Serve LLM's builder needs vLLM; names as Ray's
    path = tmp_path / "serve.yaml"
    argv = ["--recipe", recipe, f"--generator.engine={engine}", "--serve.check_resources=false"]
    assert serve_job.main([*argv, "--write-config", str(path)]) == 0
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    names = {}
    for app in config["applications"]:
        names[app["name"]] = [d["name"] for d in app.get("deployments", [])]
        if engine == "vllm" and app["name"] == "llm":
            continue  # Ray Serve LLM's OpenAI app names its own deployments (and needs vLLM to be built)
        application = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), app["args"])
        built = build_app(application, name=app["name"])
        assert sorted(d.name for d in built.deployments) == sorted(names[app["name"]])
    gen = ["VLLMGenerator", "LLMServer:ecr-generator"] if engine == "vllm" else ["Generator"]
    assert names["ecr"] == ["ECRIngress", "EmotionDetector", "Recommender", *gen]
    assert names["llm"] == ([] if engine == "vllm" else ["ChatModel"])


def test_the_written_config_rebuilds_the_config_it_was_written_from(tmp_path):
    path = tmp_path / "serve.yaml"
    argv = ["--recipe", "paper", "--generator.engine", "vllm", "--data-dir", "sample", "--serve.max_turns", "20"]
    assert serve_job.main([*argv, "--run-dir", str(tmp_path / "run"), "--write-config", str(path)]) == 0
    args = yaml.safe_load(path.read_text())["applications"][0]["args"]
    assert args["overrides"] == {"generator.engine": "vllm", "data.data_dir": "sample", "serve.max_turns": 20}
    from ecr_ray.api import AppArgs

    rebuilt = AppArgs(**args).config()
    wanted = load_config("paper", {"generator.engine": "vllm", "data.data_dir": "sample", "serve.max_turns": 20})
    assert rebuilt.to_dict() == {**wanted.to_dict(), "run_dir": str(tmp_path / "run")}


# ----------------------------------------------------------------------------- the merge step (row 6)


def test_serving_without_merged_weights_says_to_run_the_merge_job(tmp_path):
    cfg = load_config("demo", {"run_dir": str(tmp_path), "generator.engine": "vllm"})
    with pytest.raises(FileNotFoundError, match="run the merge job first: `ecr-ray merge --recipe demo"):
        check_weights(cfg)
    artifacts.write_manifest(cfg, "generator", complete=True)
    (tmp_path / "generator" / "merged").mkdir()
    (tmp_path / "generator" / "merged" / "config.json").write_text("{}")
    artifacts.write_manifest(cfg, "merge", adapter_key="an older adapter")
    with pytest.raises(FileNotFoundError, match="merged from another adapter.*run the merge job again"):
        check_weights(cfg)
    artifacts.write_manifest(cfg, "merge", adapter_key=artifacts.read_manifest(cfg, "generator")["key"])
    check_weights(cfg)


def test_the_pipeline_merges_only_for_vllm_and_lora():
    def steps(**over):
        return [s.name for s in STEPS if not s.needed or s.needed(load_config("demo", over))]

    assert steps()[-2:] == ["conversation", "generator"]
    assert steps(**{"generator.engine": "vllm"})[-2:] == ["generator", "merge"]
    assert "merge" not in steps(**{"generator.engine": "vllm", "generator.method": "full"})


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster of this module's own (`ray start --head`): the merge job joins it, then `serve run`."""
    c = LocalCluster()
    try:
        c.start_head(num_cpus=2)
        yield c
    finally:
        c.stop()  # also after a failed start: its processes


def _merge(cluster: LocalCluster, run_dir: Path, *extra: str) -> dict:
    over = [f"--{k}={v}" for k, v in TINY.items()]
    job = [sys.executable, "-m", "ecr_ray.jobs.merge", "--recipe", "demo", "--run-dir", str(run_dir), *over, *extra]
    p = subprocess.run(
        [*job, "--address", f"127.0.0.1:{cluster.gcs}"],
        cwd=PROJECT_ROOT,
        env={**cluster.env, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()  # the manifest, after the lines the Ray task's logs sent to the driver
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


@pytest.fixture(scope="module")
def vllm_run(serve_run_dir, cluster, tmp_path_factory) -> tuple[Path, dict, dict]:
    """The tiny trained run with its generator merged: the trained stages linked, the generator's adapter and
    manifest copied (the merge writes only there), `ecr-ray merge` run twice with engine vllm."""
    run = tmp_path_factory.mktemp("vllm") / "run"
    run.mkdir()
    for d in STAGE_DIRS:
        (run / d).symlink_to(serve_run_dir / d, target_is_directory=True)
    (run / "generator").mkdir()
    shutil.copy(serve_run_dir / "generator" / "manifest.json", run / "generator" / "manifest.json")
    shutil.copytree(serve_run_dir / "generator" / "adapter", run / "generator" / "adapter")
    cfg = load_config("demo", {"run_dir": str(run), **TINY, "generator.engine": "vllm"})
    assert artifacts.is_fresh(cfg, "generator")  # the engine is not part of the generator's key
    assert train_generator(cfg).get("skipped")  # so switching to vLLM never retrains
    first = _merge(cluster, run, "--generator.engine=vllm")
    second = _merge(cluster, run, "--generator.engine=transformers")  # nor of the merge's: skipped, without Ray
    return run, first, second


def test_switching_to_vllm_merges_once_and_never_retrains(vllm_run):
    run, first, second = vllm_run
    assert not first.get("skipped") and first["path"] == str(run / "generator" / "merged")
    assert second["skipped"] and second["key"] == first["key"]
    assert first["adapter_key"] == json.loads((run / "generator" / "manifest.json").read_text())["key"]
    assert (run / "generator" / "merged" / "config.json").exists()
    assert not (run / "generator" / "ray").exists()  # no Train run: nothing was retrained
    check_weights(load_config("demo", {"run_dir": str(run), **TINY, "generator.engine": "vllm"}))


# ----------------------------------------------------------------------------- the written paper config, served


@pytest.fixture(scope="module")
def paper_on_vllm(vllm_run, cluster, tmp_path_factory):
    """`serve run` of the ECR application of `ecr-ray serve --recipe paper --generator.engine vllm --write-config`,
    pointed at the tiny run and sized to 2 CPUs, on a Ray cluster of its own; Ray Serve LLM's deployment replaced by
    the stand-in (its import path and request log through the application's runtime_env)."""
    run, _, _ = vllm_run
    tmp = tmp_path_factory.mktemp("paper-vllm")
    port, path, log = free_port(), tmp / "serve.yaml", tmp / "llm-requests.jsonl"
    small = {
        "ECRIngress": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}},
        "EmotionDetector": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}},
        "Recommender": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}},
        "VLLMGenerator": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}},
    }
    argv = [
        "--recipe=paper",
        "--generator.engine=vllm",
        f"--run-dir={run}",
        "--data-dir=sample",
        "--serve.host=127.0.0.1",
        f"--serve.port={port}",
        f"--serve.deployments={json.dumps(small)}",
        '--generator.vllm={"deployment_config": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.5}}}',
        "--conversation.base_model=smollm2",  # the tiny run's conversation adapter
    ]
    assert serve_job.main([*argv, "--write-config", str(path)]) == 0
    config = yaml.safe_load(path.read_text())
    config["applications"] = [a for a in config["applications"] if a["name"] == "ecr"]
    ecr = config["applications"][0]
    ecr["runtime_env"] = {
        "env_vars": {
            vllm.STANDIN_ENV: standin.__name__,
            standin.LOG_ENV: str(log),
            "PYTHONPATH": str(PROJECT_ROOT),
            "HF_HUB_OFFLINE": "1",
        }
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    with cluster.serve_run(path, lambda: requests.get(f"{url}/healthz", timeout=5).ok, timeout=300, cwd=tmp):
        yield types.SimpleNamespace(url=url, config=ecr, log=log, cluster=cluster, run=run)


def test_serve_holds_exactly_the_deployments_the_written_config_names(paper_on_vllm):
    app = paper_on_vllm.cluster.serve_status()["applications"]["ecr"]
    assert app["status"] == "RUNNING", app
    assert sorted(app["deployments"]) == sorted(d["name"] for d in paper_on_vllm.config["deployments"])
    assert "LLMServer:ecr-generator" in app["deployments"]


DIALOGUE = [{"role": "user", "text": "I loved Toy Story, can you recommend something like it?"}]


def _sse(resp) -> list[dict]:
    events = [line[len("data: ") :] for line in resp.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]


def test_replies_and_streams_carry_the_engine_text_from_the_prompt_ids_training_saw(paper_on_vllm):
    url, log = paper_on_vllm.url, paper_on_vllm.log
    r = requests.post(f"{url}/v1/recommend", json={"dialogue": DIALOGUE, "max_new_tokens": 12}, timeout=300)
    assert r.status_code == 200, r.text
    answer = r.json()
    resp, item = answer["response"], answer["items"][0]
    with requests.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": DIALOGUE[0]["text"]}], "stream": True, "max_tokens": 12},
        stream=True,
        timeout=300,
    ) as s:
        assert s.status_code == 200
        chunks = _sse(s)
    assert all("error" not in c for c in chunks), chunks
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert pieces[1] == resp["recommendation"]  # the same u_r, then u_e from the engine
    streamed, guard = "".join(pieces[2:]), chunks[-1]["ecr"]["guard"]

    requests_seen = [json.loads(line) for line in log.read_text().splitlines()]
    plain, streams = [q for q in requests_seen if not q["stream"]], [q for q in requests_seen if q["stream"]]
    assert len(streams) == 1 and 1 <= len(plain) <= 2  # a second, sampled try only if the guard emptied the first
    assert plain[0]["text"].strip() and plain[0]["text"] == streams[0]["text"]  # real, greedy: the same text

    # The ids the engine got are training's for the prompt of this reply: one BOS (the template's), no other.
    tok = AutoTokenizer.from_pretrained(paper_on_vllm.run / "generator" / "merged")
    k = answer["explanation"]
    prompt = render_prompt(
        tok, generation_messages(item["name"], k["review_entities"], k["triples"], resp["recommendation"])
    )
    for q in requests_seen:
        assert q["prompt_ids"] == prompt_token_ids(tok, prompt)
        assert q["prompt_ids"][0] == tok.bos_token_id != q["prompt_ids"][1]

    # The stream shows what the reply guard lets through of that text, as the non-stream reply does.
    assert guard["checked"] and (streamed.strip() or guard["dropped"])
    if resp["guard"]["regenerations"] == 0:
        assert " ".join(streamed.split()) == " ".join(resp["empathetic"].split())
