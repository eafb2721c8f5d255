"""2-trial sweeps of each kind on the demo recipe, on a real local Ray cluster."""

from __future__ import annotations

import csv

import pytest

from ecr_ray.config import load_config
from ecr_ray.data.tables import build_tables
from ecr_ray.tuning import space as tuning


def test_feedback_space_follows_the_paper():
    space = tuning.feedback_space()
    assert len(space) == 7  # 3 values x 3 weights, the all-1.0 setting counted once
    assert {"like": 2.0, "dislike": 1.0, "not_said": 1.0} in space
    assert all(sum(v != 1.0 for v in s.values()) <= 1 for s in space)
    assert len(tuning.feedback_space(full_grid=True)) == 27
    with pytest.raises(ValueError, match="unknown weight"):
        tuning.feedback_space({"love": [1.0]})


def test_knowledge_space():
    assert tuning.knowledge_space() == [
        {"num_triples": t, "num_review_entities": e} for t, e in ([0, 0], [2, 4], [4, 8], [0, 6])
    ]
    with pytest.raises(ValueError, match="pn_t, pn_e"):
        tuning.knowledge_space([[1]])


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=True)
    yield
    ray.shutdown()


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_feedback_sweep_two_trials_resumable(ray_local, tmp_path):
    from ecr_ray.tuning.sweep import run_sweep

    over = {
        "run_dir": str(tmp_path / "run"),
        "recommender.epochs": 2,
        "tune.search_space": {"feedback": {"like": [1.0, 2.0], "dislike": [1.0], "not_said": [1.0]}},
    }
    cfg = load_config("demo", over)
    build_tables(cfg)
    # The default reads the emotion stage's links: without them the sweep stops before any trial, naming the fix.
    with pytest.raises(FileNotFoundError, match=r"entity_emotions.parquet not found: run the emotion stage first"):
        run_sweep(cfg, "feedback")
    assert not (cfg.run_path / "tune" / "feedback" / "ray").exists()

    cfg = load_config("demo", {**over, "recommender.emotions_source": "seed"})
    summary = run_sweep(cfg, "feedback")
    rows = _rows(summary["results_csv"])
    assert [float(r["like"]) for r in rows] == [1.0, 2.0]
    assert all(r["valid_rt@50"] not in ("", None) for r in rows)
    exp = cfg.run_path / "tune" / "feedback"
    assert (exp / "feedback_sweep.png").stat().st_size > 1000
    best = load_config(str(exp / "best_feedback.yaml"))
    assert best.recommender.feedback_weights["like"] == float(summary["best"]["like"])

    # Rerunning the same sweep restores the experiment: finished trials are not trained again.
    mtimes = {p: p.stat().st_mtime for p in exp.glob("trials/*/run/recommender/*/model.pt")}
    assert len(mtimes) == 2
    again = run_sweep(cfg, "feedback")
    assert again["trials"] == 2
    assert {p: p.stat().st_mtime for p in exp.glob("trials/*/run/recommender/*/model.pt")} == mtimes


def test_knowledge_sweep_two_trials(ray_local, tmp_path):
    from ecr_ray.jobs import build_reviews, train_generator
    from ecr_ray.tuning.sweep import run_sweep

    run = str(tmp_path / "run")
    common = ["--recipe", "demo", "--run-dir", run, "--generator.max_steps", "2", "--generator.max_new_tokens", "12"]
    cfg = load_config(
        "demo",
        {
            "run_dir": run,
            "generator.max_steps": 2,
            "generator.max_new_tokens": 12,
            "tune.knowledge_eval_samples": 3,
            "tune.search_space": {"knowledge": [[0, 0], [2, 4]]},
        },
    )
    build_tables(cfg)
    assert build_reviews.main(common) == 0
    assert train_generator.main(common) == 0
    summary = run_sweep(cfg, "knowledge")
    rows = _rows(summary["results_csv"])
    assert [(int(r["num_triples"]), int(r["num_review_entities"])) for r in rows] == [(0, 0), (2, 4)]
    assert all(r["item_entities_per_response"] != "" and r["halluc_entities_per_response"] != "" for r in rows)
    best = load_config(summary["best_recipe"])
    assert (best.generator.num_triples, best.generator.num_review_entities) in [(0, 0), (2, 4)]
    assert (cfg.run_path / "tune" / "knowledge" / "knowledge_sweep.png").exists()
