"""`ray job submit` against a real local `ray start --head` cluster (loopback only), as users run the jobs."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ecr_ray.config import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster(temp_dir: Path) -> None:
    """Stop only this cluster's processes (all carry its temp dir in their command line). `ray stop` would end
    every Ray process on the machine, other users' clusters included."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(temp_dir) in " ".join(p.info["cmdline"] or []):
                procs.append(p)
                p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        p.kill()


@pytest.fixture(scope="module")
def ray_head():
    # A short temp dir: Ray's unix sockets live under it and socket paths are limited to ~107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="ecr-ray-", dir="/tmp"))
    gcs, dash = _free_port(), _free_port()
    # Token auth, as Ray >= 2.59 clusters run it: a fresh token for this cluster, given to server and client.
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # as with the venv activated: `python` = ours
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    # Every listening port free-picked: fixed defaults (e.g. the agent's 52365) clash with other local clusters.
    ports = [
        f"--{name}={_free_port()}"
        for name in (
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "metrics-export-port",
            "runtime-env-agent-port",
            "ray-client-server-port",
        )
    ]
    subprocess.run(
        [
            BIN / "ray",
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            *ports,
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            "--num-cpus=2",
            f"--temp-dir={tmp}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dash}"
    try:
        yield env
    finally:
        _stop_cluster(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def submit(env, *job_args: str, timeout: float = 600) -> tuple[str, str]:
    """Submit `python -m ecr_ray.jobs.<...>` from the repo root; wait for a terminal status; return (status, logs)."""
    cmd = [
        BIN / "ray",
        "job",
        "submit",
        "--no-wait",
        "--working-dir",
        ".",
        "--runtime-env",
        "cluster/runtime_env.yaml",
        "--",
        "python",
        "-m",
        *job_args,
    ]
    for _ in range(90):  # right after `ray start` the job agent may not be up yet (slow on a busy machine): retry
        out = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        if "No available agent" not in out.stderr:
            break
        time.sleep(2)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    job_id = re.search(r"raysubmit_[A-Za-z0-9]+", out.stdout + out.stderr).group(0)
    # Status and logs through a fresh process with this cluster's token (this process may hold another one).
    probe = (
        "import sys, time; from ray.job_submission import JobSubmissionClient as C\n"
        "c = C(sys.argv[1]); deadline = time.time() + float(sys.argv[3])\n"
        "while (s := c.get_job_status(sys.argv[2]).value) not in ('SUCCEEDED', 'FAILED', 'STOPPED') "
        "and time.time() < deadline: time.sleep(2)\n"
        "print(s); print(c.get_job_logs(sys.argv[2]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, env["RAY_API_SERVER_ADDRESS"], job_id, str(timeout)],
        env=env,
        capture_output=True,
        text=True,
    )
    status, _, logs = res.stdout.partition("\n")
    assert status in ("SUCCEEDED", "FAILED", "STOPPED"), f"job {job_id}: {status} {res.stderr[-2000:]}"
    return status, logs


def test_data_job_via_ray_job_submit(ray_head, tmp_path):
    run_dir = tmp_path / "run"
    status, logs = submit(ray_head, "ecr_ray.jobs.data", "--recipe", "demo", "--run-dir", str(run_dir))
    assert status == "SUCCEEDED", logs
    assert "tables written to" in logs
    manifest = json.loads((run_dir / "tables" / "manifest.json").read_text())
    assert manifest["counts"]["splits"]["test"]["samples"] > 0


def test_failed_job_reports_clear_error(ray_head, tmp_path):
    status, logs = submit(
        ray_head,
        "ecr_ray.jobs.data",
        "--recipe",
        "demo",
        "--run-dir",
        str(tmp_path),
        "--data-dir",
        str(tmp_path / "missing"),
    )
    assert status == "FAILED"
    assert "file not found" in logs and "Traceback" not in logs


TINY = [
    "--emotion.epochs",
    "1",
    "--recommender.epochs",
    "1",
    "--generator.max_steps",
    "2",
    "--generator.eval_samples",
    "4",
    "--generator.max_new_tokens",
    "8",
]


def test_pipeline_via_ray_job_submit_runs_every_stage_then_skips(ray_head, tmp_path):
    """Every stage job (data, train_emotion, build_reviews, train/evaluate_recommender, train/evaluate_generator)
    runs inside one submitted pipeline job on the cluster; a resubmission finds all stages up to date."""
    run_dir = tmp_path / "run"
    status, logs = submit(
        ray_head, "ecr_ray.jobs.pipeline", "--recipe", "demo", "--run-dir", str(run_dir), *TINY, timeout=1500
    )
    assert status == "SUCCEEDED", logs[-5000:]
    state = json.loads((run_dir / "pipeline.json").read_text())
    assert list(state) == ["data", "emotions", "reviews", "recommender", "generator"]
    assert all(s["key"] for s in state.values())
    for path in (
        "tables/samples.parquet",
        "emotions/entity_emotions.parquet",
        "reviews/movie_knowledge.parquet",
        "recommender/full/model.pt",
        "eval/recommender.md",
        "generator/adapter/adapter_config.json",
        "eval/generator/report.md",
        "summary.md",
    ):
        assert (run_dir / path).exists(), path

    status, logs = submit(ray_head, "ecr_ray.jobs.pipeline", "--recipe", "demo", "--run-dir", str(run_dir), *TINY)
    assert status == "SUCCEEDED", logs[-3000:]
    assert logs.count("up to date") == 5
