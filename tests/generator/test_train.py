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
        assert g["sentences_dropped"] == g["unlinked_entity"] + g["viewing_claim"] and g["check_ms_per_reply"] > 0
    for row in metrics["metrics"]["all"].values():
        assert 0 < row["distinct_1"] <= 1 and row["words_mean"] > 0
    lines = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(x["finetuned"] and x["zeroshot"] and x["finetuned_guard"]["checked"] for x in lines)
    assert "| finetuned |" in (out / "report.md").read_text() and "## Reply guard" in (out / "report.md").read_text()


def test_deepspeed_zero3_matches_ddp_and_resumes(tmp_path, ray_cluster):
    """ZeRO-3 shards every parameter over the 2 workers; the adapter it saves (shards gathered) after one step is
    the one plain DDP trains on the same data, and a rerun resumes it with the sharded optimizer state and the LR
    schedule: 1 step + resume + 1 step ends where 2 steps in one go end."""
    from ecr_ray.generator.train import fit as train_generator

    assert build_reviews.main(["--recipe", "demo", "--run-dir", str(tmp_path / "ddp"), "--engine", "local"]) == 0
    shutil.copytree(tmp_path / "ddp" / "reviews", tmp_path / "zero3" / "reviews")
    shutil.copytree(tmp_path / "ddp" / "reviews", tmp_path / "straight" / "reviews")

    def fit(name: str, deepspeed: dict, stop_at: int | None):
        cfg = load_config(
            "demo",
            {
                "run_dir": str(tmp_path / name),
                "generator.max_steps": 2,
                "generator.batch_size": 1,
                "generator.max_length": 96,
                "generator.lr": 1e-3,
                "generator.checkpoint_every": 1,
                "generator.train_resources": {"workers": 2, "cpus": 1},
                "generator.warmup_steps": 0,
                "generator.lora_dropout": 0.0,  # no RNG
                "generator.deepspeed": deepspeed,
            },
        )
        m = train_generator(cfg, name, stop_after_steps=stop_at or 0)
        return m, load_file(str(tmp_path / name / "generator" / "adapter" / "adapter_model.safetensors"))

    m_ddp, ddp = fit("ddp", {}, 1)
    m_z3, z3 = fit("zero3", {"zero_optimization": {"stage": 3}}, 1)
    assert m_z3["losses"] == m_ddp["losses"]
    assert ddp.keys() == z3.keys()
    for k in ddp:
        assert z3[k].shape == ddp[k].shape  # gathered, not this rank's shard
        # Adam's first step moves each weight by ~lr; the two agree to a small fraction of it.
        torch.testing.assert_close(z3[k], ddp[k], rtol=0, atol=0.05 * 1e-3)

    m, resumed = fit("zero3", {"zero_optimization": {"stage": 3}}, None)
    assert m["steps"] == 2 and m["losses"][0] == m_z3["losses"][0]
    assert m["metrics"]["lr"] == pytest.approx(0.5e-3)  # step 2 of 2 on the linear decay, not a restarted schedule
    assert any(not torch.equal(resumed[k], z3[k]) for k in z3)
    # Adam's moments came back with the weights: a restarted optimizer would take a different second step.
    m_straight, straight = fit("straight", {"zero_optimization": {"stage": 3}}, None)
    assert m_straight["losses"] == m["losses"]
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0.05 * 1e-3)
