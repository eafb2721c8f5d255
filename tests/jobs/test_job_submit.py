"""`ray job submit` against a real local `ray start --head` cluster (loopback only, token auth), as users run the
jobs. The whole pipeline on a multi-node cluster is rehearsed in tests/cluster/test_rehearsal.py."""

from __future__ import annotations

import json

import pytest

from tests.ray_cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    c.start_head(num_cpus=2)
    yield c
    c.stop()


def test_data_job_via_ray_job_submit(cluster, tmp_path):
    run_dir = tmp_path / "run"
    status, logs, _ = cluster.run("ecr_ray.jobs.data", "--recipe", "demo", "--run-dir", str(run_dir))
    assert status == "SUCCEEDED", logs
    assert f"data written to {run_dir / 'tables'}" in logs and "data: driver peak RSS" in logs
    manifest = json.loads((run_dir / "tables" / "manifest.json").read_text())
    assert manifest["counts"]["splits"]["test"]["samples"] > 0 and manifest["key"]


def test_failed_job_reports_clear_error(cluster, tmp_path):
    status, logs, _ = cluster.run(
        "ecr_ray.jobs.data", "--recipe", "demo", "--run-dir", str(tmp_path), "--data-dir", str(tmp_path / "missing")
    )
    assert status == "FAILED"
    assert "file not found" in logs and "Traceback" not in logs
