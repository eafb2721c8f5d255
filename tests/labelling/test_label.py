"""The OpenAI-compatible endpoint (llm_server.py) over real HTTP on 127.0.0.1, and the LLM labelling job against it:
resumable shards, killed midway and rerun."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pyarrow.parquet as pq

from ecr_ray.config import PROJECT_ROOT, load_config
from ecr_ray.data.tables import build_tables


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


MSGS = [{"role": "user", "content": "Name one movie genre."}]


def test_models_and_chat_completion(endpoint):
    client = openai.OpenAI(base_url=endpoint, api_key="unused")
    assert [m.id for m in client.models.list()] == ["smollm2-135m-instruct"]
    r = client.chat.completions.create(model="smollm2-135m-instruct", messages=MSGS, max_tokens=12, temperature=0)
    text = r.choices[0].message.content
    assert text.strip() and r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 5
    assert r.choices[0].finish_reason in ("stop", "length")
    # streaming (SSE) yields the same greedy text, chunk by chunk
    chunks = list(
        client.chat.completions.create(
            model="smollm2-135m-instruct", messages=MSGS, max_tokens=12, temperature=0, stream=True
        )
    )
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason  # cut: "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text


def test_bad_requests(endpoint):
    code, body = post(f"{endpoint}/chat/completions", {"model": "gpt-9", "messages": MSGS})
    assert code == 404 and body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"
    assert post(f"{endpoint}/chat/completions", {"messages": []})[0] == 400
    assert post(f"{endpoint}/chat/completions", {"messages": MSGS, "max_tokens": 0})[0] == 400


def _job(run_dir, url, n):
    return [
        sys.executable,
        "-m",
        "ecr_ray.jobs.label_emotions",
        "--recipe",
        "demo",
        "--run-dir",
        str(run_dir),
        "--llm-base-url",
        url,
        "--llm-model",
        "smollm2-135m-instruct",
        "--emotion.llm_max_turns",
        str(n),
        "--emotion.llm_shard_rows",
        "1",
        "--emotion.llm_concurrency",
        "1",
        "--emotion.llm_max_tokens",
        "6",
    ]


def test_label_job_killed_midway_resumes_without_loss_or_duplicates(endpoint, tmp_path):
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run")})
    build_tables(cfg)
    shards = cfg.run_path / "emotions" / "llm_labels"
    n = 10
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        _job(cfg.run_path, endpoint, n),
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 180
        while len(list(shards.glob("part-*.parquet"))) < 2:
            assert proc.poll() is None, "job ended before it could be killed"
            assert time.time() < deadline, "no shard written in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job, its Ray cluster and workers: a hard crash
        proc.wait()
    first = {p.name: pq.read_table(p)["turn_id"].to_pylist() for p in shards.glob("part-*.parquet")}
    assert 2 <= len(first) < n, "the kill did not land midway"

    done = subprocess.run(
        _job(cfg.run_path, endpoint, n), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["rows"] == summary["selected"] == n and summary["missing"] == 0 and summary["duplicates"] == 0
    assert f"{n - len(first)} to do" in done.stderr
    ids = [t for p in shards.glob("part-*.parquet") for t in pq.read_table(p)["turn_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == n
    for name, turn_ids in first.items():  # finished shards survive the crash untouched
        assert pq.read_table(shards / name)["turn_id"].to_pylist() == turn_ids
    table = pq.read_table(shards)
    assert set(table["status"].to_pylist()) <= {"ok", "scanned", "unparseable"}
    assert all(t > 0 for t in table["prompt_tokens"].to_pylist())
    # a third run has nothing left to do
    again = subprocess.run(
        _job(cfg.run_path, endpoint, n), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and "0 to do" in again.stderr


def test_labelling_on_the_embedded_endpoint_deletes_only_its_own_application(endpoint, tmp_path):
    """Without --llm-base-url the job serves the embedded model as a Serve application of its own and deletes that
    application at the end: whatever else Serve runs on the cluster (here the module's endpoint and a stand-in for a
    production app) stays."""
    from ray import serve

    from ecr_ray.labelling.label import fit

    cfg = load_config(
        "demo",
        {
            "run_dir": str(tmp_path / "run"),
            "emotion.llm_max_turns": 2,
            "emotion.llm_max_tokens": 4,
            "emotion.llm_shard_rows": 2,
        },
    )
    build_tables(cfg)

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Other:
        def __call__(self, request) -> str:
            return "still here"

    serve.run(Other.bind(), name="production", route_prefix="/production")
    try:
        before = set(serve.status().applications)
        summary = fit(cfg)  # Serve is running: the job adds its own `llm-…` application beside the others
        assert summary["rows"] == 2 and summary["missing"] == 0
        assert set(serve.status().applications) == before  # its own application is gone, the others stay
    finally:
        serve.delete("production")


def test_the_labeller_sends_the_model_its_endpoint_serves(tmp_path):
    """`emotion.llm_model` empty: the id the project's own endpoint serves (generator.base_model's), whatever the
    recipe's base model; another endpoint needs the name; a name the own endpoint does not serve is refused."""
    from ecr_ray.config import ConfigError
    from ecr_ray.labelling.data import endpoint_model

    assert endpoint_model(load_config("demo")) == "smollm2-135m-instruct"
    assert endpoint_model(load_config("paper")) == "meta-llama/Llama-2-7b-chat-hf"
    assert endpoint_model(load_config("demo", {"emotion.llm_model": "smollm2"})) == "smollm2-135m-instruct"
    far = {"emotion.llm_base_url": "https://api.example.com/v1"}
    assert endpoint_model(load_config("paper", {**far, "emotion.llm_model": "gpt-4o-mini"})) == "gpt-4o-mini"
    try:
        endpoint_model(load_config("paper", far))
        raise AssertionError("no model for another endpoint")
    except ConfigError as e:
        assert "emotion.llm_model: required with emotion.llm_base_url" in str(e)
    try:
        endpoint_model(load_config("paper", {"emotion.llm_model": "smollm2-135m-instruct"}))
        raise AssertionError("a model the own endpoint does not serve")
    except ConfigError as e:
        assert "'smollm2-135m-instruct' is not served by the project's own endpoint" in str(e)
        assert "serves generator.base_model as 'meta-llama/Llama-2-7b-chat-hf'" in str(e)


def test_a_refused_model_fails_the_job_in_one_line(tmp_path, capsys):
    from ecr_ray.jobs.cli import run_job
    from ecr_ray.jobs.label_emotions import main

    rc = run_job(main, ["--recipe", "paper", "--run-dir", str(tmp_path), "--llm-model", "smollm2-135m-instruct"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[0].startswith("error: emotion.llm_model: 'smollm2-135m-instruct' is not served")


def test_labelling_on_the_own_endpoint_of_a_non_embedded_base_model(endpoint, tmp_path):
    """Paper-recipe shape on the CPU: the base model is named by path (as Llama-2 by hub id), so the own endpoint
    answers to that name only; the labeller asks for it (sending the embedded model's id, every row was a 404)."""
    from ecr_ray.hub import resolve
    from ecr_ray.labelling.label import fit

    base = resolve("smollm2")  # the converted embedded model, by its path
    cfg = load_config(
        "demo",
        {
            "run_dir": str(tmp_path / "run"),
            "generator.base_model": base,
            "emotion.llm_max_turns": 2,
            "emotion.llm_max_tokens": 4,
            "emotion.llm_shard_rows": 2,
        },
    )
    build_tables(cfg)
    summary = fit(cfg)
    assert summary["endpoint_model"] == base
    assert summary["rows"] == 2 and summary["missing"] == 0 and summary["errors"]["count"] == 0, summary["errors"]
