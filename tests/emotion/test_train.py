"""jobs/train_emotion.py end to end on the demo recipe: Ray Train fit, report, Ray Data labelling, contracts."""

import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ecr_ray.config import EMOTIONS, load_config
from ecr_ray.data.errors import DataError
from ecr_ray.data.tables import build_tables, read_table
from ecr_ray.emotion.data import load_seeds
from ecr_ray.emotion.links import ENTITY_EMOTIONS_SCHEMA, link_entity_emotions, turn_entities
from ecr_ray.emotion.predictor import TURN_EMOTIONS_SCHEMA, EmotionPredictor
from ecr_ray.jobs import train_emotion


def test_train_and_label_every_user_turn(tmp_path):
    run = tmp_path / "run"
    cfg = load_config("demo", {"run_dir": str(run), "emotion.epochs": 1, "emotion.label_resources": {"workers": 1}})
    build_tables(cfg)
    assert (
        train_emotion.main(
            [
                "--recipe",
                "demo",
                "--run-dir",
                str(run),
                "--emotion.epochs",
                "1",
                "--emotion.label_resources",
                "{workers: 1}",
            ]
        )
        == 0
    )

    report = json.loads((run / "emotions" / "classifier" / "report.json").read_text())
    v = report["valid"]
    assert v["rows"] == report["valid_rows"] > 0 and 0 <= v["recall@2"] <= 1
    assert set(v["per_label"]) == set(EMOTIONS) and "negative_recall" in v
    assert report["seed_match"]["matched"] == report["train_rows"] + report["valid_rows"]

    turns = read_table(run, "turns")
    users = turns.filter(pc.equal(turns["role"], "user"))
    te = pq.read_table(run / "emotions" / "turn_emotions.parquet")
    assert te.schema == TURN_EMOTIONS_SCHEMA
    assert len(te) == len(users) and set(te["role"].to_pylist()) == {"user"}
    assert {(r["conversation_id"], r["turn_index"]) for r in te.to_pylist()} == {
        (r["conversation_id"], r["turn_index"]) for r in users.to_pylist()
    }
    ents = {(r["conversation_id"], r["turn_index"]): bool(turn_entities(r)) for r in users.to_pylist()}
    for r in te.to_pylist():
        p = np.array(r["probs"])
        assert len(p) == 9 and abs(p.sum() - 1) < 1e-4
        above = [EMOTIONS[i] for i in np.argsort(-p) if p[i] > cfg.emotion.threshold]
        has = ents[(r["conversation_id"], r["turn_index"])]
        assert r["labels"] == (above or ([EMOTIONS[int(p.argmax())]] if has else []))
        assert r["source"] == "classifier"

    ee = pq.read_table(run / "emotions" / "entity_emotions.parquet")
    assert ee.schema == ENTITY_EMOTIONS_SCHEMA and len(ee) > 0
    assert ee.equals(link_entity_emotions(turns, te, cfg.emotion.threshold, cfg.emotion.max_emotions_per_entity))
    assert max(len(x) for x in ee["emotions"].to_pylist()) <= cfg.emotion.max_emotions_per_entity

    # the inference API reproduces the batch labels
    pred = EmotionPredictor.load(cfg)
    rows = {(r["conversation_id"], r["turn_index"]): r["text"] for r in users.to_pylist()}
    some = te.slice(0, 5).to_pylist()
    probs = pred.predict([rows[(r["conversation_id"], r["turn_index"])] for r in some])
    np.testing.assert_allclose(probs, np.array([r["probs"] for r in some]), atol=1e-4)
    manifest = json.loads((run / "emotions" / "manifest.json").read_text())
    assert manifest["counts"]["user_turns"] == len(te) and manifest["key"]


def test_bad_seed_row_names_file_line_and_field(tmp_path):
    p = tmp_path / "seeds.jsonl"
    p.write_text(
        '{"conversation_id": "1", "message_ids": [1], "labels": ["like"], "raw": ["love"]}\n'
        '{"conversation_id": "1", "message_ids": [2], "labels": ["joyous"], "raw": ["joy"]}\n'
    )
    with pytest.raises(DataError, match=r"seeds.jsonl:2: field 'labels'"):
        load_seeds(p)
