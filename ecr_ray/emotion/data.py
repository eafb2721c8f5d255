"""The emotion classifier's data: seed LLM labels (`<data_dir>/emotions/redial_llm_labels.jsonl`) matched to user
turns by message ids, their train/validation split by conversation, and the label ↔ probability rules."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..config import EMOTIONS, Config
from ..data.errors import InvalidRows
from ..data.labels_file import load_seeds


def load_seed_rows(cfg: Config, path: Path) -> list[dict]:
    """The seed file's rows; under `data.skip_invalid` bad rows are skipped and logged by line, else the first one
    raises a DataError naming file, line and field."""
    invalid = InvalidRows(skip=cfg.data.skip_invalid)
    rows = load_seeds(path, invalid)
    if invalid.errors:
        log.warning("%s: skipped %d invalid rows (data.skip_invalid): %s", path, len(invalid.errors), invalid.errors[0])
    return rows


NUM_EMOTIONS = len(EMOTIONS)
EMOTION_INDEX = {e: i for i, e in enumerate(EMOTIONS)}
log = logging.getLogger(__name__)


def seed_path(cfg: Config) -> Path:
    return cfg.emotion.seed_path(cfg.data.resolved_dir())


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
        rows.append(
            {
                "conversation_id": t["conversation_id"],
                "split": t["split"],
                "turn_index": t["turn_index"],
                "text": t["text"],
                "labels": s["labels"],
                "raw": s["raw"],
            }
        )
    return rows, {
        "seeds": len(seeds),
        "matched": len(rows),
        "unmatched": len(unmatched),
        "unmatched_examples": unmatched[:5],
    }


def in_seed_valid(conversation_id: str, fraction: float, seed: int) -> bool:
    """Deterministic validation membership of a seed row, by conversation (no turn of one dialogue on both sides)."""
    h = int(hashlib.sha256(f"emotion:{seed}:{conversation_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def split_seeds(cfg: Config, turns: pa.Table) -> tuple[list[dict], list[dict], dict]:
    """Seed rows matched to `turns` → (train rows, validation rows, match report). Validation is held out by
    conversation (emotion.valid_fraction); train is capped at emotion.max_train_rows."""
    path = seed_path(cfg)
    invalid = InvalidRows(skip=cfg.data.skip_invalid)
    matched, report = match_seeds(turns, load_seeds(path, invalid))
    report = {**report, "invalid_rows": invalid.report()}  # kept in the classifier's report.json
    if not matched:
        raise FileNotFoundError(f"no seed label of {path} matches a turn of the tables")
    e = cfg.emotion
    valid = [r for r in matched if in_seed_valid(r["conversation_id"], e.valid_fraction, cfg.seed)]
    train = [r for r in matched if not in_seed_valid(r["conversation_id"], e.valid_fraction, cfg.seed)]
    if e.max_train_rows:
        train = train[: e.max_train_rows]
    if not valid or not train:
        raise ValueError(
            f"seed split is empty (train {len(train)}, valid {len(valid)}): change "
            f"emotion.valid_fraction ({e.valid_fraction})"
        )
    return train, valid, report


def targets_from_labels(labels: list[list[str]]) -> np.ndarray:
    """[[label, ...]] → multi-hot [n, 9] (float32); unknown labels raise."""
    y = np.zeros((len(labels), NUM_EMOTIONS), dtype=np.float32)
    for i, ls in enumerate(labels):
        for l in ls:
            if l not in EMOTION_INDEX:
                raise ValueError(f"row {i}: unknown emotion label {l!r}; known: {EMOTIONS}")
            y[i, EMOTION_INDEX[l]] = 1.0
    return y


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Per-label weights ∝ frequency^-power, normalised to mean 1 (labels never seen get the largest weight)."""
    freq = np.maximum(y.sum(0), 1.0) / max(len(y), 1)
    w = freq**-power
    return (w / w.mean()).astype(np.float32)


def keep_labels(probs: np.ndarray, threshold: float, fallback_top: bool) -> list[str]:
    """Labels with p > β, strongest first; if none pass and `fallback_top`, the top one."""
    order = np.argsort(-probs, kind="stable")
    kept = [EMOTIONS[i] for i in order if probs[i] > threshold]
    if not kept and fallback_top:
        kept = [EMOTIONS[int(order[0])]]
    return kept
