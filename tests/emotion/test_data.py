"""Seed labels match the tables' user turns by message ids."""

import pytest

from ecr_ray.config import load_config
from ecr_ray.data.errors import DataError
from ecr_ray.data.tables import build_tables, read_table
from ecr_ray.emotion.data import in_seed_valid, load_seed_rows, load_seeds, match_seeds, seed_path, split_seeds


def test_sample_seeds_match_turns(tmp_path):
    cfg = load_config("demo", {"run_dir": str(tmp_path)})
    build_tables(cfg)
    rows, rep = match_seeds(read_table(cfg.run_path, "turns"), load_seeds(seed_path(cfg)))
    assert rep["matched"] == len(rows) > 0 and rep["unmatched"] == 0
    assert all(r["text"] and r["labels"] for r in rows)


def test_real_seeds_all_match_and_split_by_conversation(real_data_dir, tmp_path):
    cfg = load_config("cpu", {"run_dir": str(tmp_path), "data.data_dir": str(real_data_dir)})
    build_tables(cfg)
    rows, rep = match_seeds(read_table(cfg.run_path, "turns"), load_seeds(seed_path(cfg)))
    assert rep == {"seeds": 3600, "matched": 3600, "unmatched": 0, "unmatched_examples": []}
    valid = {r["conversation_id"] for r in rows if in_seed_valid(r["conversation_id"], 0.15, cfg.seed)}
    train = {r["conversation_id"] for r in rows} - valid
    assert valid and train and not valid & train
    assert 0.10 < sum(r["conversation_id"] in valid for r in rows) / len(rows) < 0.22


def test_a_bad_seed_row_stops_the_stage_or_is_skipped_and_reported(tmp_path, caplog):
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run")})
    build_tables(cfg)
    good = seed_path(cfg).read_text()
    bad = tmp_path / "seeds.jsonl"
    bad.write_text(good + '{"conversation_id": "x", "message_ids": [1], "labels": ["joyous"], "raw": ["joy"]}\n')
    line = good.count("\n") + 1
    turns = read_table(cfg.run_path, "turns")
    strict = load_config("demo", {"run_dir": str(tmp_path / "run"), "emotion.seed_labels": str(bad)})
    with pytest.raises(DataError, match=rf"seeds.jsonl:{line}: field 'labels'"):
        split_seeds(strict, turns)
    skipping = load_config(
        "demo", {"run_dir": str(tmp_path / "run"), "emotion.seed_labels": str(bad), "data.skip_invalid": True}
    )
    train, valid, report = split_seeds(skipping, turns)
    assert len(train) + len(valid) == report["matched"] == good.count("\n")
    assert report["invalid_rows"]["skipped"] == 1 and f"seeds.jsonl:{line}" in report["invalid_rows"]["rows"][0]
    with caplog.at_level("WARNING"):
        assert load_seed_rows(skipping, bad) == load_seeds(seed_path(cfg))
    assert "skipped 1 invalid rows" in caplog.text
