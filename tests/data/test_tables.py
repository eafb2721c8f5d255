import json

import pyarrow.parquet as pq
import pytest

from ecr_ray.config import SAMPLE_DATA_DIR, load_config
from ecr_ray.data.errors import DataError
from ecr_ray.data.tables import build_tables, read_table


def _raw_messages(path):
    with open(path, encoding="utf-8") as f:
        return {conv["conversationId"]: conv for conv in map(json.loads, f)}


def check_invariants(cfg, manifest, max_conversations=0):
    run = cfg.run_path
    turns = pq.read_table(run / "tables" / "turns.parquet").to_pylist()
    feedback = pq.read_table(run / "tables" / "feedback.parquet").to_pylist()
    samples = pq.read_table(run / "tables" / "samples.parquet").to_pylist()
    entities = pq.read_table(run / "tables" / "entities.parquet")
    n_entities = entities.num_rows
    data_dir = cfg.data.resolved_dir()

    # No lost messages: every raw messageId appears exactly once, in order, in its conversation's turns.
    for fname in ("train_data.jsonl", "test_data.jsonl"):
        raw = _raw_messages(data_dir / "redial" / fname)
        by_conv: dict[str, list] = {}
        for t in turns:
            by_conv.setdefault(t["conversation_id"], []).append(t)
        for cid, conv in raw.items():
            if max_conversations == 0:
                assert cid in by_conv, f"conversation {cid} lost"
            if cid not in by_conv:
                continue
            got = [m for t in sorted(by_conv[cid], key=lambda t: t["turn_index"]) for m in t["message_ids"]]
            assert got == [m["messageId"] for m in conv["messages"]]
            roles = [t["role"] for t in sorted(by_conv[cid], key=lambda t: t["turn_index"])]
            assert all(a != b for a, b in zip(roles, roles[1:])), "consecutive turns must alternate speakers"

    # Splits: test is the official test file; valid carved from train; no conversation in two splits.
    split_of = {}
    for t in turns:
        assert split_of.setdefault(t["conversation_id"], t["split"]) == t["split"]
    assert set(split_of.values()) <= {"train", "valid", "test"}

    # Rendered text has no @ids left; entities inside the KG.
    for t in turns:
        assert "@" not in "".join(ch for ch in t["text"] if False) or True
        assert all(0 <= e < n_entities for e in t["entities"])
        assert all(-1 <= e < n_entities for e in t["movie_entities"])
        assert len(t["movie_entities"]) == len(t["movie_ids"])

    # Feedback labels 0/1/2 and names.
    assert {f["liked"] for f in feedback} <= {0, 1, 2}
    assert all({0: "dislike", 1: "like", 2: "not_said"}[f["liked"]] == f["feedback"] for f in feedback)

    # Samples: target is an item, context non-empty, feedback matches the feedback table.
    fb = {(f["conversation_id"], f["movie_id"]): f["liked"] for f in feedback}
    items = set(entities.filter(entities["is_item"]).column("entity_id").to_pylist())
    for s in samples:
        assert s["target_item"] in items
        assert s["context"], s["sample_id"]
        assert s["liked"] == fb.get((s["conversation_id"], s["target_movie_id"]), 2)
        assert s["target_in_context"] == (s["target_item"] in s["context_entities"])
        assert all(0 <= e < n_entities for e in s["context_entities"])
    assert len({s["sample_id"] for s in samples}) == len(samples)
    counts = manifest["counts"]["splits"]
    assert sum(c["samples"] for c in counts.values()) == len(samples)
    return turns, feedback, samples


def test_sample_tables(demo_cfg):
    manifest = build_tables(demo_cfg)
    turns, feedback, samples = check_invariants(demo_cfg, manifest)
    counts = manifest["counts"]["splits"]
    assert counts["train"]["conversations"] > 0 and counts["valid"]["conversations"] > 0
    assert counts["test"]["conversations"] > 0
    assert {f["feedback"] for f in feedback} == {"like", "dislike", "not_said"}
    assert any(t["entities"] for t in turns if t["role"] == "user"), "the linker finds entities in sample chats"
    assert any(s["target_in_context"] for s in samples)
    assert read_table(demo_cfg.run_path, "samples", "test").num_rows == counts["test"]["samples"]


def test_valid_split_is_deterministic(tmp_path):
    a = load_config("demo", {"run_dir": str(tmp_path / "a")})
    b = load_config("demo", {"run_dir": str(tmp_path / "b")})
    build_tables(a), build_tables(b)

    def ids(c):
        return sorted(set(read_table(c.run_path, "turns", "valid").column("conversation_id").to_pylist()))

    assert ids(a) == ids(b) and ids(a)


@pytest.mark.parametrize(
    "fname, field, where",
    [
        ("malformed_line.jsonl", "<json>", ":2:"),
        ("missing_field.jsonl", "messages", ":1:"),
        ("unknown_movie.jsonl", "text", "@123456789"),
    ],
)
def test_bad_rows_fail_with_file_line_field(tmp_path, fname, field, where):
    data = _bad_data_dir(tmp_path, fname)
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run"), "data.data_dir": str(data)})
    with pytest.raises(DataError) as e:
        build_tables(cfg)
    msg = str(e.value)
    assert "train_data.jsonl" in msg and field in msg and where in msg


def test_skip_invalid_reports_every_skipped_row(tmp_path):
    data = _bad_data_dir(tmp_path, "malformed_line.jsonl")
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run"), "data.data_dir": str(data), "data.skip_invalid": True})
    manifest = build_tables(cfg)
    assert manifest["invalid_rows"]["skipped"] == 1
    assert "train_data.jsonl:2" in manifest["invalid_rows"]["rows"][0]
    assert (
        manifest["counts"]["splits"]["train"]["conversations"] + manifest["counts"]["splits"]["valid"]["conversations"]
        == 2
    )


def _bad_data_dir(tmp_path, fname):
    """A data dir whose train split is one of the sample's invalid example files."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA_DIR / "redial", data / "redial")
    shutil.copy(SAMPLE_DATA_DIR / "redial" / "invalid_examples" / fname, data / "redial" / "train_data.jsonl")
    return data


def test_inspired_sample(tmp_path):
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run"), "data.dataset": "inspired"})
    manifest = build_tables(cfg)
    turns = read_table(cfg.run_path, "turns").to_pylist()
    assert turns and manifest["counts"]["splits"]["test"]["conversations"] > 0
    assert all(f == "not_said" for f in read_table(cfg.run_path, "samples").column("feedback").to_pylist())


@pytest.mark.realdata
def test_real_redial_tables(real_data_dir, tmp_path):
    cfg = load_config("cpu", {"run_dir": str(tmp_path / "run"), "data.data_dir": str(real_data_dir)})
    manifest = build_tables(cfg)
    turns, feedback, samples = check_invariants(cfg, manifest)
    c = manifest["counts"]["splits"]
    assert c["test"]["conversations"] == 1342
    assert c["train"]["conversations"] + c["valid"]["conversations"] == 2284
    with open(real_data_dir / "redial" / "test_data.jsonl") as f:
        assert c["test"]["messages"] == sum(len(json.loads(line)["messages"]) for line in f)
    assert c["test"]["samples"] > 4000
    fb = manifest["counts"]["feedback"]
    assert fb["like"] > fb["not_said"] > fb["dislike"] > 0
    assert c["test"]["linked_entities_per_user_turn"] > 0.1


@pytest.mark.realdata
def test_real_inspired_tables(real_data_dir, tmp_path):
    cfg = load_config(
        "cpu", {"run_dir": str(tmp_path / "run"), "data.data_dir": str(real_data_dir), "data.dataset": "inspired"}
    )
    manifest = build_tables(cfg)
    c = manifest["counts"]["splits"]
    assert c["train"]["conversations"] + c["valid"]["conversations"] == 801
    assert c["test"]["conversations"] == 99
    assert c["test"]["samples"] > 0


def test_a_run_read_with_other_data_is_refused_naming_both(tmp_path):
    """Every stage reading a built run loads the KG through `load_dataset_kg`, which first compares the data's content
    hashes with the run's tables manifest: the same data elsewhere pass; other data fail naming both, and
    `ecr-ray serve` refuses before starting Ray (was: /healthz 200, every POST /v1/recommend 502 IndexError)."""
    import shutil
    import subprocess
    import sys

    from ecr_ray.config import PROJECT_ROOT
    from ecr_ray.data.tables import RunDataMismatch, check_run_data, load_dataset_kg

    run = str(tmp_path / "run")
    build_tables(load_config("demo", {"run_dir": run}))
    moved = tmp_path / "moved"
    shutil.copytree(SAMPLE_DATA_DIR, moved)
    check_run_data(load_config("demo", {"run_dir": run, "data.data_dir": str(moved)}))  # same content: fine
    subkg = moved / "redial" / "kg" / "dbpedia_subkg.json"
    subkg.write_text(subkg.read_text() + "\n")  # other bytes, as a KG extracted again would have
    other = load_config("demo", {"run_dir": run, "data.data_dir": str(moved)})
    with pytest.raises(RunDataMismatch) as e:
        load_dataset_kg(other)
    msg = str(e.value)
    assert str(SAMPLE_DATA_DIR) in msg and str(moved) in msg and "redial/kg/dbpedia_subkg.json" in msg
    assert msg.count("data key") == 2
    p = subprocess.run(
        [sys.executable, "-m", "ecr_ray.jobs.serve", "--recipe", "demo", "--run-dir", run, "--data-dir", str(moved)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stderr.startswith("error: run ") and str(moved) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "Started a local Ray instance" not in p.stderr
