"""Seed labels match the tables' user turns by message ids."""

from ecr_ray.config import load_config
from ecr_ray.data.tables import build_tables, read_table
from ecr_ray.emotion.data import in_seed_valid, load_seeds, match_seeds, seed_path


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
