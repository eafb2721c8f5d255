"""`ray job submit` against a real local `ray start --head` cluster (loopback only), as users run the jobs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecr_ray.config import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    gcs, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([BIN / "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2",
                    f"--temp-dir={tmp}", "--disable-usage-stats"], check=True, env=env, capture_output=True)
    env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dash}"
    yield env
    subprocess.run([BIN / "ray", "stop", "--force"], env=env, capture_output=True)


def submit(env, *job_args: str, timeout: float = 600) -> tuple[str, str]:
    """Submit `python -m jobs.<...>` from the repo root; wait for a terminal status; return (status, logs)."""
    out = subprocess.run([BIN / "ray", "job", "submit", "--no-wait", "--working-dir", ".",
                          "--runtime-env", "cluster/runtime_env.yaml", "--", "python", "-m", *job_args],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    job_id = next(w for line in out.stdout.splitlines() + out.stderr.splitlines()
                  for w in line.split() if w.startswith("raysubmit_"))
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(env["RAY_API_SERVER_ADDRESS"])
    deadline = time.time() + timeout
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.time() < deadline, f"job {job_id} still {status} after {timeout}s"
        time.sleep(2)
    return status.value, client.get_job_logs(job_id)


def test_data_job_via_ray_job_submit(ray_head, tmp_path):
    run_dir = tmp_path / "run"
    status, logs = submit(ray_head, "jobs.data", "--recipe", "demo", "--run-dir", str(run_dir))
    assert status == "SUCCEEDED", logs
    assert "tables written to" in logs
    manifest = json.loads((run_dir / "tables" / "manifest.json").read_text())
    assert manifest["counts"]["splits"]["test"]["samples"] > 0


def test_failed_job_reports_clear_error(ray_head, tmp_path):
    status, logs = submit(ray_head, "jobs.data", "--recipe", "demo", "--run-dir", str(tmp_path),
                          "--data-dir", str(tmp_path / "missing"))
    assert status == "FAILED"
    assert "file not found" in logs and "Traceback" not in logs
