"""Ray Train job for the recommender on the demo recipe: 2-worker gloo DDP, a killed worker resumed from the epoch
checkpoint (FailureConfig), rerun → skip / resume, the DeepSpeed ZeRO path on CPU, the evaluation report, and the
Serve-facing RecommenderPredictor. Real local Ray cluster, real embedded MiniLM, tiny model sizes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import ray

from ecr_ray.config import load_config
from ecr_ray.data.tables import build_tables
from ecr_ray.jobs import evaluate_recommender, train_recommender
from ecr_ray.jobs.cli import run_job
from ecr_ray.recommender.train import fit
from tests.recommender.served import loved

TINY = {
    "recommender.entity_dim": 32,
    "recommender.epochs": 2,
    "recommender.batch_size": 16,
    "recommender.prompt_tokens": 2,
    "recommender.max_context_turns": 4,
}


@pytest.fixture(scope="module")
def ray_local():
    # Two logical GPUs: the paper recipe's GPU shape runs here with force_cpu (test_paper_shape_...).
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec-job")
    build_tables(load_config("demo", {"run_dir": str(root / "run")}))
    return root / "run"


def cfg_for(run_dir: Path, **over):
    return load_config("demo", {"run_dir": str(run_dir), **TINY, **over})


@pytest.fixture(scope="module")
def trained_full(ray_local, run_dir):
    """variant full with the copy head on the emotion classifier's labels, 2 DDP workers; worker failure injected at
    epoch 2 (once) → FailureConfig restart."""
    from ecr_ray.emotion.train import fit as fit_emotions

    fit_emotions(cfg_for(run_dir, **{"emotion.epochs": 1}))
    cfg = cfg_for(
        run_dir,
        **{
            "recommender.variant": "full",
            "recommender.copy_mentioned": True,
            "recommender.train_resources": {"workers": 2},
        },
    )
    marker = run_dir.parent / "failed-once"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECR_TRAIN_FAULT", f"epoch=2,once={marker}")
        m = fit(cfg)
    assert marker.exists()  # the failure did happen
    return cfg, m


def test_ddp_training_survives_a_worker_failure(trained_full):
    cfg, m = trained_full
    out = cfg.run_path / "recommender" / "full+copy"
    history = json.loads((out / "history.json").read_text())
    # epoch 1 came from the checkpoint after the restart: it was not trained twice
    assert [h["epoch"] for h in history] == [1, 2]
    assert m["emotions_source"] == "file" and m["best_epoch"] in (1, 2)
    meta = json.loads((out / "meta.json").read_text())
    assert (out / "model.pt").exists() and (meta["variant"], meta["name"]) == ("full", "full+copy")
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        for k in ("auc", "auc_global", "rt@1", "rt@10", "rt@50", "r@1", "r@10", "r@50", "r@50_norep", "r@50_new"):
            assert k in metrics[split]
        assert 0 <= metrics[split]["r@50"] <= 1 and metrics[split]["r@50_norep"] <= metrics[split]["r@50"]
        assert 0 < metrics[split]["n_new"] <= metrics[split]["n"]
    assert metrics["test"]["n_new"] < metrics["test"]["n"]  # the demo test split has repeated targets
    ckpts = [p for p in Path(m["ray_run"]).glob("checkpoint_*") if p.is_dir()]
    assert 1 <= len(ckpts) <= 2  # one per epoch, num_to_keep=2


def test_rerun_skips_then_resumes_from_the_checkpoint(trained_full):
    cfg, first = trained_full
    again = fit(cfg)
    assert again.get("skipped") and again["key"] == first["key"]
    (cfg.run_path / "recommender" / "full+copy" / "manifest.json").unlink()
    resumed = fit(cfg)  # same RunConfig(name, storage_path): nothing left to train
    history = json.loads((cfg.run_path / "recommender" / "full+copy" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and not resumed.get("skipped")
    assert resumed["test"]["r@50"] == pytest.approx(first["test"]["r@50"])


def test_predictor_answers_a_text_dialogue(trained_full):
    from ecr_ray.recommender.predictor import RecommenderPredictor

    cfg, _ = trained_full
    p = RecommenderPredictor.load(cfg)
    # an item whose title the text linker resolves on its own (movie titles are linked, not only @ids)
    item, title = next(
        (int(i), p.names[int(i)]) for i in p.item_ids if p._link(f"Have you seen {p.names[int(i)]}?") == [int(i)]
    )
    dialogue, emotions = loved(title)
    res = p.recommend(dialogue, emotions, top_k=5)
    assert len(res["items"]) == 5 and all(it["name"] for it in res["items"])
    # With the copy head (this model) the ranking is the model's, a mentioned movie included when it ranks; a model
    # without one cannot judge a repeat, so the movie the dialogue names is left out and the rest keep their order.
    ranked = [it["entity_id"] for it in res["items"]]
    p.rc = dataclasses.replace(p.rc, copy_mentioned=False)
    filtered = [it["entity_id"] for it in p.recommend(dialogue, emotions, top_k=5)["items"]]
    p.rc = dataclasses.replace(p.rc, copy_mentioned=True)
    assert item not in filtered and len(filtered) == 5
    kept = [e for e in ranked if e in filtered]  # the unfiltered top-5 less the movies the dialogue names
    assert item not in kept and filtered[: len(kept)] == kept
    scores = [it["score"] for it in res["items"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    linked = {e["entity_id"]: e for e in res["explanation"]["entities"]}
    assert linked[item]["emotions"] == ["happy"]  # recommender-turn entity ← the user's next turn
    # without emotions the same dialogue scores differently (variant full reads them)
    plain = p.recommend(dialogue, [None, None, None], top_k=5)
    assert [it["score"] for it in plain["items"]] != scores
    with pytest.raises(ValueError, match="one entry per turn"):
        p.recommend(dialogue, [None], top_k=5)
    # batched = one by one; the re-sent history comes from the turn-embedding cache
    other = [{"role": "user", "text": f"Something like {title} please"}]
    batch = p.recommend_batch([dialogue, other, dialogue[:1]], [emotions, [None], [None]], [5, 3, 2])
    for b, (d, e, k) in zip(batch, [(dialogue, emotions, 5), (other, [None], 3), (dialogue[:1], [None], 2)]):
        one = p.recommend(d, e, top_k=k)
        assert [i["entity_id"] for i in b["items"]] == [i["entity_id"] for i in one["items"]]
        assert [i["score"] for i in b["items"]] == pytest.approx([i["score"] for i in one["items"]], rel=1e-4, abs=1e-7)
        assert b["explanation"] == one["explanation"]
    assert p.encode_turns.stats()["misses"] == 4  # 3 turns of `dialogue` + `other`, each encoded once


def test_serving_builds_the_inputs_training_built_for_the_same_dialogues(trained_full):
    """Every demo test sample: its dialogue as a client sends it (raw turns, ReDial @ids included, with the emotion
    classifier's probabilities for user turns) through the serving path equals the batch training built for it."""
    import torch

    from tests.recommender.served import served_and_trained

    cfg, _ = trained_full
    served, trained, _ = served_and_trained(cfg)
    for k in ("entities", "emo_ids", "turn_mask", "ent_age", "ent_role"):
        assert torch.equal(served[k], trained[k]), k
    torch.testing.assert_close(served["emo_probs"], trained["emo_probs"])
    # the same turn texts (titles for @ids, "User:"/"Recommender:"), encoded in other batches: float noise only
    torch.testing.assert_close(served["turn_emb"], trained["turn_emb"], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(served["cooc"].to_dense(), trained["cooc"].to_dense())
    assert (trained["emo_ids"][..., 0] >= 0).any()  # emotions really are part of what was compared


def test_predictor_refuses_a_model_trained_on_other_emotions_than_it_serves(trained_full, tmp_path):
    from ecr_ray.recommender.predictor import RecommenderPredictor

    cfg, _ = trained_full
    other = tmp_path / "full"
    shutil.copytree(cfg.run_path / "recommender" / "full+copy", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "emotions_source": "seed"}))
    with pytest.raises(ValueError, match="trained on 'seed' emotions, but serving gives it the emotion classifier's"):
        RecommenderPredictor(cfg, other)


def test_evaluate_writes_json_markdown_and_plots(trained_full, capsys):
    cfg, _ = trained_full
    assert evaluate_recommender.main(["--recipe", "demo", "--run-dir", str(cfg.run_path)]) == 0
    out = cfg.run_path / "eval"
    report = json.loads((out / "recommender.json").read_text())
    assert "auc_global" in report["full+copy"]["test"]
    md = (out / "recommender.md").read_text()
    assert "paper ECR" in md and "ours full+copy" in md
    # three protocols on the same test samples, the two baselines as rows, paired intervals against them
    test = report["full+copy"]["test"]
    protocols = report["protocols"]
    assert protocols["paper"]["samples"] == protocols["norep"]["samples"] == test["n"]
    assert protocols["new"]["samples"] == test["n_new"] < test["n"]
    for name, t in protocols.items():
        assert list(t["rows"])[:3] == ["popularity", "repeat", "full+copy"] and f"Protocol `{name}`" in md
        assert t["rows"]["full+copy"]["r@50"] == pytest.approx(test[{"paper": "r@50"}.get(name, f"r@50_{name}")])
        d = t["paired"]["full+copy"]["repeat"]["r@10" + ("_norep" if name == "norep" else "")]
        assert d["ci95"][0] <= d["diff"] <= d["ci95"][1]
    # the repeat ranking hits every repeated target at R@50 (a repeat is among the few mentioned items) …
    rep = report["baselines"]["repeat"]
    assert rep["r@50"] >= 1 - rep["n_new"] / rep["n"]
    # … and without them (norep) it is the popularity ranking
    assert protocols["norep"]["rows"]["repeat"] == protocols["norep"]["rows"]["popularity"]
    for png in ("recommender_curves.png", "recommender_ablation.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_paper_shape_deepspeed_workers_holding_gpus_train_on_the_cpu(ray_local, run_dir):
    """The paper recipe's recommender shape (DeepSpeed config, one GPU per Train worker) with force_cpu: each worker
    holds a (logical) GPU, joins over gloo and trains ZeRO on the CPU."""
    paper = load_config("paper").recommender
    cfg = cfg_for(
        run_dir,
        **{
            "force_cpu": True,
            "recommender.variant": "baseline",
            "recommender.epochs": 1,
            "recommender.deepspeed": paper.deepspeed,
            "recommender.train_resources": {"workers": 2, "cpus": 1, "gpus": paper.train_resources.gpus},
        },
    )
    assert paper.deepspeed["zero_optimization"]["stage"] == 2 and paper.train_resources.gpus == 1
    m = fit(cfg)
    assert m["epochs"] == 1 and m["emotions_source"] == "none"
    assert np.isfinite(m["test"]["ce"])
    history = json.loads((cfg.run_path / "recommender" / "baseline" / "history.json").read_text())
    assert [(h["device"], h["gpus_held"]) for h in history] == [("cpu", 1)]


def test_full_without_emotions_is_a_clear_error(run_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(load_config("demo").data.resolved_dir(), data)
    shutil.rmtree(data / "emotions")
    rc = run_job(
        train_recommender.main,
        [
            "--recipe",
            "demo",
            "--run-dir",
            str(run_dir),
            "--data-dir",
            str(data),
            "--recommender.variant",
            "full",
            "--recommender.emotions_source",
            "seed",
        ],
    )
    err = capsys.readouterr().err
    assert rc == 2 and "seed emotion labels" in err and "baseline" in err


def test_a_fractional_cpu_worker_gets_the_threads_ray_tasks_get(ray_local, run_dir):
    """`cpus: 1.5` (a Tune trial leaves room for its driver) trains with ceil(1.5) = 2 torch threads, not 1."""
    cfg = cfg_for(
        run_dir,
        **{"recommender.variant": "baseline", "recommender.epochs": 1, "recommender.train_resources": {"cpus": 1.5}},
    )
    fit(cfg, force=True)
    history = json.loads((cfg.run_path / "recommender" / "baseline" / "history.json").read_text())
    assert [h["threads"] for h in history] == [2]
