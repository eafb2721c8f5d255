"""2-trial sweeps of each kind on the demo recipe, on a real local Ray cluster."""

from __future__ import annotations

import csv
import json
import re

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
    """Table 9's four settings: (0,0), (2,4), (4,8) with triple lines, and (2,4) with the triples' tails among the
    entities, no triple lines (labelled (0,2+4))."""
    space = tuning.knowledge_space()
    assert [(s["num_triples"], s["num_review_entities"], s["knowledge_format"]) for s in space] == [
        (0, 0, "triples"),
        (2, 4, "triples"),
        (4, 8, "triples"),
        (2, 4, "entities"),
    ]
    assert [tuning.knowledge_label(s) for s in space] == ["(0,0)", "(2,4)", "(4,8)", "(0,2+4)"]
    for bad in ([[1]], [[1, 2, "tails"]], [[True, 2]], [[-1, 2]]):
        with pytest.raises(ValueError, match="pn_t, pn_e"):
            tuning.knowledge_space(bad)


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
        "data.max_conversations": 80,  # what the sweep does, not how well it learns: a small task
        # several steps an epoch: past a mid-epoch progress report, which must not reach Tune (its metric check)
        "recommender.batch_size": 8,
        "recommender.log_every": 4,
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
    exp = cfg.run_path / "tune" / "feedback"
    rows = _rows(summary["results_csv"])
    assert [float(r["like"]) for r in rows] == [1.0, 2.0]
    # fifo (B.1): every trial trains to its last epoch and reports the kept model on validation and test.
    for r in rows:
        assert r["stopped_early"] == "False" and int(r["epochs_run"]) == 2 and int(r["best_epoch"]) in (1, 2)
        assert all(0.0 <= float(r[f"{split}_{m}"]) <= 1.0 for split in ("valid", "test") for m in ("rt@50", "auc"))
    kept = json.loads(next(exp.glob("trials/*00000/run/recommender/*/metrics.json")).read_text())
    assert float(rows[0]["test_rt@50"]) == pytest.approx(kept["test"]["rt@50"])  # the kept model's own scores
    md = (exp / "results.md").read_text()
    assert "never used to choose" in md
    # each setting against the uniform weights on the same test samples, with a paired bootstrap interval
    paired = next(line for line in md.splitlines() if line.startswith("| 2.0000 | 1.0000 | 1.0000 | ") and "[" in line)
    diff, lo, hi = (float(x) for x in re.findall(r"[+-]\d\.\d+", paired.split("|")[4]))
    assert diff == pytest.approx(float(rows[1]["test_rt@50"]) - float(rows[0]["test_rt@50"]), abs=1e-4)
    assert lo <= diff <= hi
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
            "tune.search_space": {"knowledge": [[0, 0], [2, 4, "entities"]]},
        },
    )
    build_tables(cfg)
    assert build_reviews.main(common) == 0
    assert train_generator.main(common) == 0
    summary = run_sweep(cfg, "knowledge")
    rows = _rows(summary["results_csv"])
    assert [(int(r["num_triples"]), int(r["num_review_entities"]), r["knowledge_format"]) for r in rows] == [
        (0, 0, "triples"),
        (2, 4, "entities"),
    ]
    assert all(r["item_entities_per_response"] != "" and r["halluc_entities_per_response"] != "" for r in rows)
    best = load_config(summary["best_recipe"])
    g = best.generator
    assert (g.num_triples, g.num_review_entities, g.knowledge_format) in [(0, 0, "triples"), (2, 4, "entities")]
    assert (cfg.run_path / "tune" / "knowledge" / "knowledge_sweep.png").exists()
