"""The turns the LLM labels, and the resumable Parquet shards its labels are written to."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..config import Config, ConfigError
from ..emotion.data import load_seed_rows, match_seeds, seed_path
from ..hub import served_model_id
from .prompts import MAX_HISTORY

SHARD_SCHEMA = pa.schema(
    [
        ("turn_id", pa.string()),
        ("conversation_id", pa.string()),
        ("split", pa.string()),
        ("turn_index", pa.int32()),
        ("utterance", pa.string()),
        ("answer", pa.string()),
        ("status", pa.string()),  # ok | scanned | unparseable | error
        ("raw", pa.list_(pa.string())),
        ("labels", pa.list_(pa.string())),
        ("unmapped", pa.list_(pa.string())),
        ("reason", pa.string()),
        ("error", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("attempts", pa.int32()),
        ("seconds", pa.float32()),
        ("model", pa.string()),
    ]
)


def endpoint_model(cfg: Config) -> str:
    """The model id the labeller sends. Another endpoint (`emotion.llm_base_url`): `emotion.llm_model`, required. The
    project's own endpoint (`llm_base_url` empty; `ecr_ray/llm_server.py`, either engine): the id it serves, that of
    `generator.base_model`; an `llm_model` naming another model is refused here, before any request (each one
    would be a 404)."""
    e = cfg.emotion
    if e.llm_base_url:
        if not e.llm_model:
            raise ConfigError(
                f"emotion.llm_model: required with emotion.llm_base_url ({e.llm_base_url}): the model that endpoint "
                "serves"
            )
        return e.llm_model
    own = served_model_id(cfg.generator.base_model)
    if e.llm_model not in ("", own, cfg.generator.base_model):
        raise ConfigError(
            f"emotion.llm_model: {e.llm_model!r} is not served by the project's own endpoint (emotion.llm_base_url "
            f"is empty), which serves generator.base_model as {own!r}: leave emotion.llm_model empty, or set "
            f"emotion.llm_base_url to an endpoint that serves {e.llm_model!r}"
        )
    return own


def labels_dir(cfg: Config) -> Path:
    return cfg.run_path / "emotions" / "llm_labels"


def user_turns(turns: pa.Table) -> list[dict]:
    """User turns with up to MAX_HISTORY previous turns of the same conversation as [(role, text)]."""
    by_conv: dict[str, list[dict]] = defaultdict(list)
    for r in turns.select(["conversation_id", "split", "turn_index", "role", "text"]).to_pylist():
        by_conv[r["conversation_id"]].append(r)
    out = []
    for conv_id, conv in by_conv.items():
        conv.sort(key=lambda r: r["turn_index"])
        for i, r in enumerate(conv):
            if r["role"] == "user":
                hist = [(h["role"], h["text"]) for h in conv[max(0, i - MAX_HISTORY) : i]]
                out.append(
                    {
                        "turn_id": f"{conv_id}:{r['turn_index']}",
                        "conversation_id": conv_id,
                        "split": r["split"],
                        "turn_index": r["turn_index"],
                        "utterance": r["text"],
                        "history": json.dumps(hist),
                    }
                )
    return out


def sample(rows: list[dict], n: int) -> list[dict]:
    """A deterministic sample of n rows (by a hash of the turn id); all rows when n == 0."""
    if not n or n >= len(rows):
        return rows
    return sorted(rows, key=lambda r: hashlib.sha256(r["turn_id"].encode()).hexdigest())[:n]


def read_shards(out_dir: Path) -> pa.Table:
    """All finished shards (temp files of a killed run are ignored)."""
    parts = sorted(out_dir.glob("part-*.parquet"))
    if not parts:
        return SHARD_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=SHARD_SCHEMA) for p in parts])


def resolve(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per turn, labelled rows before `error` rows of earlier runs (a rerun retries errors).
    Returns (table, number of labelled duplicates found: 0 unless shards were copied by hand)."""
    status = table["status"].to_pylist()
    ids = table["turn_id"].to_pylist()
    order = sorted(range(len(ids)), key=lambda i: status[i] == "error")
    seen, keep, dup = set(), [], 0
    for i in order:
        if ids[i] in seen:
            dup += status[i] != "error"
            continue
        seen.add(ids[i])
        keep.append(i)
    return table.take(sorted(keep)), dup


def load_seed_map(cfg: Config, turns: pa.Table, required: bool) -> dict[str, list[str]]:
    path = seed_path(cfg)
    if not path.exists() and not required:
        return {}
    matched, _ = match_seeds(turns, load_seed_rows(cfg, path))
    return {f"{r['conversation_id']}:{r['turn_index']}": r["labels"] for r in matched}
