"""Seed emotion labels (`<data_dir>/emotions/redial_llm_labels.jsonl`) and their match to turns by message ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ..config import Config
from ..data import labels_file


def seed_path(cfg: Config) -> Path:
    return Path(cfg.emotion.seed_labels) if cfg.emotion.seed_labels else \
        cfg.data.resolved_dir() / "emotions" / "redial_llm_labels.jsonl"


def load_seeds(path: Path) -> list[dict]:
    """Read and check the seed file; a bad row raises DataError naming the file, line and field."""
    return labels_file.load_seeds(path)


def match_seeds(turns: pa.Table, seeds: list[dict]) -> tuple[list[dict], dict]:
    """Seeds → user turns with identical message ids. Returns (rows with conversation_id, split, turn_index,
    text, labels, raw), report (matched / unmatched with examples)."""
    by_msgs = {}
    for t in turns.select(["conversation_id", "split", "turn_index", "role", "message_ids", "text"]).to_pylist():
        if t["role"] == "user":
            by_msgs[tuple(t["message_ids"])] = t
    rows, unmatched = [], []
    for s in seeds:
        t = by_msgs.get(tuple(s["message_ids"]))
        if t is None or t["conversation_id"] != str(s["conversation_id"]):
            unmatched.append(s["message_ids"])
            continue
        rows.append({"conversation_id": t["conversation_id"], "split": t["split"], "turn_index": t["turn_index"],
                     "text": t["text"], "labels": s["labels"], "raw": s["raw"]})
    return rows, {"seeds": len(seeds), "matched": len(rows), "unmatched": len(unmatched),
                  "unmatched_examples": unmatched[:5]}


def in_seed_valid(conversation_id: str, fraction: float, seed: int) -> bool:
    """Deterministic validation membership of a seed row, by conversation (no turn of one dialogue on both sides)."""
    h = int(hashlib.sha256(f"emotion:{seed}:{conversation_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction
