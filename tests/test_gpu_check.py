"""benchmarks/gpu_check.py — the check prepared for a lent GPU machine — runs the same code on the CPU at tiny scale,
without Ray (the GPU machine has none), so it cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

from ecr_ray.config import PROJECT_ROOT

# The script run with `import ray` made to fail, as on a machine without Ray.
NO_RAY = "import runpy, sys; sys.modules['ray'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"  # noqa: E501


def test_gpu_check_runs_on_cpu_without_ray(tmp_path):
    out = tmp_path / "report.json"
    script = str(PROJECT_ROOT / "benchmarks" / "gpu_check.py")
    args = [script, "--device", "cpu", "--tiny", "--steps", "2", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", NO_RAY, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]  # `import ray` anywhere would have failed
    r = json.loads(out.read_text())
    assert r["device"] == "cpu" and r["recipe"] == "paper"
    lora = r["lora"]
    assert lora["steps"] == 3 and lora["gradient_checkpointing"] and lora["lora_r"] == 32
    assert lora["lora_targets"] == ["q_proj", "k_proj", "v_proj", "o_proj"]  # the paper recipe's
    assert (
        0 < lora["trainable"] < lora["params"] and lora["tokens_per_s"] > 0 and lora["loss_last"] == lora["loss_last"]
    )
    ds = r["deepspeed"]
    assert ds["zero_stage"] == 2 and ds["round_trip_ok"] and ds["loss_step3_resumed"] == ds["loss_step3_straight"]
    assert any("optim_states" in f for f in ds["checkpoint_files"])  # DeepSpeed's own checkpoint, saved and loaded
    assert r["recommender"]["step_s_median"] > 0 and r["recommender"]["loss"] > 0
    assert r["decode"]["new_tokens"] == r["decode"]["batch"] * 8 and r["decode"]["decode_tokens_per_s"] > 0
