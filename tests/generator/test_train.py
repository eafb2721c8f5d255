"""The whole generator path on the demo recipe, tiny: review DB job → Ray Train LoRA (stopped and resumed by rerunning
the same run name) → PEFT adapter → predictor → evaluation job with offline metrics."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from ecr_ray.config import load_config
from ecr_ray.data.tables import build_tables
from ecr_ray.generator.predictor import GeneratorPredictor
from ecr_ray.jobs import build_reviews, evaluate_generator, train_generator
from tests.conftest import item_id


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()


def test_train_resume_predict_evaluate(tmp_path, ray_cluster):
    run = tmp_path / "run"
    common = ["--recipe", "demo", "--run-dir", str(run)]
    tiny = [
        "--generator.max_steps",
        "3",
        "--generator.batch_size",
        "1",
        "--generator.max_length",
        "96",
        "--generator.checkpoint_every",
        "1",
        "--generator.lr",
        "1e-3",
        "--generator.max_new_tokens",
        "12",
    ]
    assert build_reviews.main(common + ["--engine", "local"]) == 0

    assert train_generator.main(common + tiny + ["--run-name", "t", "--stop-after-steps", "2"]) == 0
    first = json.loads((run / "generator" / "manifest.json").read_text())
    assert first["steps"] == 2 and first["total_steps"] == 3 and len(first["losses"]) == 2
    assert train_generator.main(common + tiny + ["--run-name", "t"]) == 0  # same name: resumes at step 2
    m = json.loads((run / "generator" / "manifest.json").read_text())
    assert m["steps"] == 3 and m["losses"][:2] == first["losses"]
    adapter = run / "generator" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at 0: it trained

    cfg = load_config("demo", {"run_dir": str(run), "generator.max_new_tokens": 12})
    tuned, base = GeneratorPredictor.load(cfg), GeneratorPredictor.load(cfg, zero_shot=True)
    ids = tuned.tok("Hello there", return_tensors="pt")
    with torch.inference_mode():
        assert not torch.allclose(tuned.model(**ids).logits, base.model(**ids).logits)
    # vLLM serves plain weights: base + adapter merged give the same logits as the adapter on the base.
    from ecr_ray.generator.model import merge_adapter
    from ecr_ray.hub import load_chat_model

    _, merged = load_chat_model(merge_adapter(load_config("demo", {"run_dir": str(run), "generator.dtype": "float32"})))
    with torch.inference_mode():
        torch.testing.assert_close(merged(**ids).logits, tuned.model(**ids).logits, atol=1e-4, rtol=1e-4)
    r = tuned.respond(item_id(tuned.kg, "Titanic (1997)"), "You should watch <movie>")
    assert r["response"].startswith("You should watch Titanic (1997).")

    build_tables(cfg)
    gold = ["--dataset-items"]  # no recommender in this run: the dataset's items (the served reply: tests/serve)
    assert (
        evaluate_generator.main(common + gold + ["--generator.max_new_tokens", "8", "--generator.eval_samples", "6"])
        == 0
    )
    out = run / "eval" / "generator"
    metrics = json.loads((out / "metrics.json").read_text())
    served = {"finetuned", "zeroshot"}  # and each model's replies before the reply guard
    assert metrics["contexts"] == 6 and set(metrics["metrics"]["all"]) == served | {f"{m}_unguarded" for m in served}
    for m in served:
        assert metrics["metrics"]["all"][m]["halluc_entities_per_response"] == 0  # guarded
        g = metrics["reply_guard"][m]
        assert g["sentences_dropped"] == g["unlinked_entity"] + g["viewing_claim"] + g["repeats"]
        assert g["check_ms_per_reply"] > 0
    for row in metrics["metrics"]["all"].values():
        assert 0 < row["distinct_1"] <= 1 and row["words_mean"] > 0
    lines = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(x["finetuned"] and x["zeroshot"] and x["finetuned_guard"]["checked"] for x in lines)
    assert "| finetuned |" in (out / "report.md").read_text() and "## Reply guard" in (out / "report.md").read_text()


def test_deepspeed_zero2_two_workers_resume_and_restart(tmp_path, ray_cluster, monkeypatch):
    """The paper recipe's path on CPU: transformers' Trainer with DeepSpeed ZeRO-2 over 2 gloo workers (global batch 2
    = 2 × micro-batch 1), gradient checkpointing. A run cut in pieces (stop after step 1; rerun, a worker fails at step
    2 and Ray Train restarts it, max_failures 1) ends where 3 steps in one go end: every resume restored DeepSpeed's
    sharded optimizer state (one shard per rank in the checkpoint), the LR schedule and the data position."""
    from ecr_ray.generator.train import fit as train_generator

    assert build_reviews.main(["--recipe", "demo", "--run-dir", str(tmp_path / "straight"), "--engine", "local"]) == 0
    shutil.copytree(tmp_path / "straight" / "reviews", tmp_path / "pieces" / "reviews")
    zero2 = {"zero_optimization": {"stage": 2}}

    def fit(name: str, stop_at: int = 0):
        cfg = load_config(
            "demo",
            {
                "run_dir": str(tmp_path / name),
                "generator.max_steps": 3,
                "generator.batch_size": 2,
                "generator.micro_batch_size": 1,
                "generator.gradient_checkpointing": True,
                "generator.max_length": 64,
                "generator.lr": 1e-3,
                "generator.checkpoint_every": 1,
                "generator.train_resources": {"workers": 2, "cpus": 1},
                "generator.lora_dropout": 0.0,  # no RNG in the step
                "generator.max_failures": 1,
                "generator.deepspeed": zero2,
            },
        )
        m = train_generator(cfg, run_name=name, stop_after_steps=stop_at)
        return m, load_file(str(tmp_path / name / "generator" / "adapter" / "adapter_model.safetensors"))

    m_straight, straight = fit("straight")
    assert m_straight["steps"] == 3 and m_straight["zero_stage"] == 2 and m_straight["workers"] == 2
    first, _ = fit("pieces", stop_at=1)
    assert first["steps"] == 1 and not first["complete"]
    marker = tmp_path / "failed-once"
    monkeypatch.setenv("ECR_TRAIN_FAULT", f"step=2,once={marker}")
    m, pieces = fit("pieces")
    assert marker.exists()  # a worker failed at step 2; Ray Train restarted the run from its checkpoint
    assert m["complete"] and m["steps"] == 3
    assert m["losses"][:2] == m_straight["losses"][:2]
    assert m["losses"][2] == pytest.approx(m_straight["losses"][2], abs=2e-3)  # after a resumed step: fp32 rounding
    assert m["metrics"]["learning_rate"] == pytest.approx(1e-3 / 3)  # step 3 of 3 on the linear decay
    # Adam's moments came back with the weights: a restarted optimizer moves each weight by ~lr (1e-3) differently.
    for k in straight:
        torch.testing.assert_close(pieces[k], straight[k], rtol=0, atol=0.05 * 1e-3)
    shards = sorted(p.name for p in (tmp_path / "pieces" / "generator" / "ray").rglob("*zero_pp_rank_*optim_states.pt"))
    assert any("rank_0" in n for n in shards) and any("rank_1" in n for n in shards)  # both ranks' shards saved


LOAD = """
import json, os, socket, sys, torch
import deepspeed
from ecr_ray.config import load_config
from ecr_ray.generator.train import load_for_training, training_arguments

with socket.socket() as s:  # a free port for the one-process world's rendezvous
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
out = {}
for stage in (2, 3):
    c = load_config("demo", {"generator.deepspeed": {"zero_optimization": {"stage": stage}}}).generator
    args = training_arguments(c, sys.argv[1], 2, "cpu", 0)  # built first, as the Train worker does
    # ZeRO-2: the rank's device is "meta" here: weights that land there were never materialised anywhere else
    device = torch.device("cpu" if stage == 3 else "meta")
    _, model = load_for_training(c, False, device, args.bf16, c.zero_stage == 3)
    base = [p for n, p in model.named_parameters() if "lora_" not in n]
    out[stage] = {
        "devices": sorted({p.device.type for p in base}),
        "zero_init": all(hasattr(p, "ds_id") for p in base),
        "held": sum(p.numel() for p in base),
        "shards": sum(p.ds_tensor.numel() for p in base if hasattr(p, "ds_tensor")),
    }
print(json.dumps(out))
"""


def test_weights_load_partitioned_or_straight_onto_the_device(tmp_path):
    """Row 2 of issue 24: no rank holds a whole extra host copy of the base model. Under ZeRO-3 transformers loads it
    inside DeepSpeed's `zero.Init` (the TrainingArguments come first): every parameter is partitioned as it loads and
    the module keeps empty placeholders (one process here: its shards hold all of it). Otherwise the weights load
    straight onto the rank's device through `device_map` (on a GPU rank, its GPU; here the meta device, which a
    weight can only reach by being loaded there)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["2"]["devices"] == ["meta"] and not out["2"]["zero_init"] and out["2"]["held"] > 100_000_000
    assert out["3"]["zero_init"] and out["3"]["held"] == 0 and out["3"]["shards"] > 100_000_000
