"""benchmarks/gpu_check.py — the check prepared for a lent GPU machine — runs the same code on the CPU, so it cannot
rot between the sessions that have a GPU."""

from __future__ import annotations

import importlib.util

from ecr_ray.config import PROJECT_ROOT


def test_gpu_check_runs_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "report.json"
    r = gpu_check.main(
        [
            "--device",
            "cpu",
            "--steps",
            "3",
            "--batch",
            "1",
            "--max-length",
            "96",
            "--new-tokens",
            "4",
            "--decode-batch",
            "2",
            "--out",
            str(out),
        ]
    )
    assert out.exists() and r["device"] == "cpu" and r["steps"] == 3 and r["examples"] > 0
    assert r["step_s_median"] > 0 and r["train_tokens_per_s"] > 0 and r["decode_new_tokens"] > 0
    assert r["loss_last"] == r["loss_last"]  # a number, not NaN
