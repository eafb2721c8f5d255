"""`generator.engine: vllm` on the CPU: the Ray Serve LLM config validated by Ray's own LLMConfig, the deployment
names of the written Serve config, the merge step, and the paper recipe's written ECR application served through
real Ray Serve and Ray Serve LLM's real deployment (`build_llm_deployment`, `LLMServer`, vLLM's protocol types), only
vLLM's engine standing in (tests/serve/vllm_standin.py, injected with Ray's RAYLLM_VLLM_ENGINE_CLS), generating real
text from the merged tiny generator.

vLLM's types come from `.vllm-types` (`make vllm-types`, a prerequisite of `make test`): on PYTHONPATH of the Serve
application's runtime_env, and of a pytest process of its own for the checks that import them here
(tests/serve/vllm_types_checks.py). This process never imports vllm."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
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
from transformers import AutoTokenizer

from ecr_ray import llm_server
from ecr_ray.config import PROJECT_ROOT, ConfigError, load_config
from ecr_ray.generator import merge
from ecr_ray.generator import train as generator_train
from ecr_ray.generator.data import prompt_token_ids
from ecr_ray.generator.train import fit as train_generator
from ecr_ray.jobs import serve as serve_job
from ecr_ray.prompts import generation_messages, render_prompt
from ecr_ray.serve.vllm import SERVED_MODEL, check_weights, llm_config
from ecr_ray.stages import STAGES
from tests.ray_cluster import LocalCluster, free_port
from tests.serve.conftest import TINY

VLLM_TYPES = PROJECT_ROOT / ".vllm-types"
ENGINE_CLS = "tests.serve.vllm_standin.TransformersEngine"  # imports vLLM: never imported by this process
LOG_ENV = "ECR_VLLM_STANDIN_LOG"  # vllm_standin.LOG_ENV
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


# ----------------------------------------------------------------------------- vLLM's types (make vllm-types)


@pytest.fixture(scope="module")
def vllm_types() -> Path:
    """`.vllm-types`, checked: the vLLM version Ray Serve LLM pins, and nothing in it that would shadow a package of
    the venv (PYTHONPATH comes before site-packages). Absent or stale: fail, saying what to run."""
    pin = next(
        r.split(";")[0].split("==")[1].strip()
        for r in importlib.metadata.requires("ray")
        if r.startswith("vllm") and 'extra == "llm"' in r
    )
    found = [d.version for d in importlib.metadata.distributions(path=[str(VLLM_TYPES)]) if d.name == "vllm"]
    if found != [pin]:
        pytest.fail(
            f"{VLLM_TYPES}: vLLM's types for the engine: vllm tests are {found or 'missing'}, Ray "
            f"{ray.__version__} pins vllm=={pin}: run `make vllm-types`"
        )
    tops = [p.name.removesuffix(".py") for p in VLLM_TYPES.iterdir() if p.suffix in ("", ".py") and p.name != "bin"]
    shadowed = [t for t in tops if not t.startswith(".") and importlib.util.find_spec(t) is not None]
    assert not shadowed, f"{VLLM_TYPES} would shadow these packages of the venv: {shadowed} (Makefile VLLM_PINS)"
    return VLLM_TYPES


def test_the_checks_that_import_vllm_pass_in_a_process_of_their_own(vllm_types):
    """tests/serve/vllm_types_checks.py: Ray Serve LLM's builder on the written config, vLLM's protocol models read
    by read_chunks, the request the engine gets, the stand-in engine's answers."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/serve/vllm_types_checks.py"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{vllm_types}", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout, p.stdout[-2000:]


# ----------------------------------------------------------------------------- deployment names (row 4)


@pytest.mark.parametrize("recipe, engine", [("demo", "transformers"), ("paper", "transformers"), ("paper", "vllm")])
def test_the_written_config_names_the_deployments_its_applications_hold(recipe, engine, tmp_path):
    """Built from the written file as `serve deploy` builds it (import path + args): the deployment names must be the
    file's, or Serve fails with "Deployment ... does not exist" (ServeDeploySchema does not check it). The ECR
    application on vLLM is built with Ray Serve LLM's builder in vllm_types_checks.py (it imports vLLM)."""
    path = tmp_path / "serve.yaml"
    argv = ["--recipe", recipe, f"--generator.engine={engine}", "--serve.check_resources=false"]
    assert serve_job.main([*argv, "--write-config", str(path)]) == 0
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    names = {}
    for app in config["applications"]:
        names[app["name"]] = [d["name"] for d in app.get("deployments", [])]
        if engine == "vllm":
            continue  # Ray Serve LLM's builders need vLLM: vllm_types_checks.py builds the ECR application
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
    generator_train.STAGE.write_manifest(cfg, complete=True)
    (tmp_path / "generator" / "merged").mkdir()
    (tmp_path / "generator" / "merged" / "config.json").write_text("{}")
    merge.STAGE.write_manifest(cfg, adapter_key="an older adapter")
    with pytest.raises(FileNotFoundError, match="merged from another adapter.*run the merge job again"):
        check_weights(cfg)
    merge.STAGE.write_manifest(cfg, adapter_key=generator_train.STAGE.read_manifest(cfg)["key"])
    check_weights(cfg)


def test_the_pipeline_merges_only_for_vllm_and_lora():
    def steps(**over):
        return [s.name for s in STAGES if s.wanted(load_config("demo", over))]

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
    assert generator_train.STAGE.is_fresh(cfg)  # the engine is not part of the generator's key
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
def paper_on_vllm(vllm_run, cluster, vllm_types, tmp_path_factory):
    """`serve run` of the ECR application of `ecr-ray serve --recipe paper --generator.engine vllm --write-config`,
    pointed at the tiny run and sized to 2 CPUs, on a Ray cluster of its own. Ray Serve LLM's own deployment, placed
    on CPUs by `generator.vllm.placement_group_config` (a CPU-only bundle: Ray's LLMConfig then infers a CPU
    deployment, core/configs/llm_config.py:505-536); through the application's runtime_env, vLLM's types on
    PYTHONPATH and Ray's RAYLLM_VLLM_ENGINE_CLS naming the stand-in engine, with its request log."""
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
        "--generator.vllm="
        + json.dumps(
            {
                "deployment_config": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}},
                "placement_group_config": {"bundles": [{"CPU": 0.25}]},
            }
        ),
        "--conversation.base_model=smollm2",  # the tiny run's conversation adapter
    ]
    assert serve_job.main([*argv, "--write-config", str(path)]) == 0
    config = yaml.safe_load(path.read_text())
    config["applications"] = [a for a in config["applications"] if a["name"] == "ecr"]
    ecr = config["applications"][0]
    ecr["runtime_env"] = {
        "env_vars": {
            "RAYLLM_VLLM_ENGINE_CLS": ENGINE_CLS,  # ray/llm/_internal/serve/constants.py; llm_server.py:296-307
            LOG_ENV: str(log),
            "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{vllm_types}",
            "HF_HUB_OFFLINE": "1",
        }
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    with cluster.serve_run(path, lambda: requests.get(f"{url}/healthz", timeout=5).ok, timeout=300, cwd=tmp):
        yield types.SimpleNamespace(url=url, config=ecr, log=log, cluster=cluster, run=run)


def test_serve_holds_exactly_the_deployments_the_written_config_names(paper_on_vllm):
    deadline = time.monotonic() + 180  # /healthz answers once every deployment has a replica; RUNNING may lag
    while (app := paper_on_vllm.cluster.serve_status()["applications"]["ecr"])["status"] != "RUNNING":
        assert time.monotonic() < deadline, {n: (d["status"], d.get("message")) for n, d in app["deployments"].items()}
        time.sleep(5)
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
        json={
            "model": "ecr",
            "messages": [{"role": "user", "content": DIALOGUE[0]["text"]}],
            "stream": True,
            "max_tokens": 12,
        },
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
