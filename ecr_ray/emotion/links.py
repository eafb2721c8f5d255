"""Entity ↔ emotion links, the way ECR attaches user emotions to entities.

Entities in a user turn take that turn's emotions; entities the recommender mentioned take the emotions of the
user's NEXT turn (the user's reaction to them). A turn's entities are its movie entities (those in the KG) followed
by its linked entities, deduplicated. Entities with no emotional turn to attach to (a recommender turn with no
later user turn, or a user turn without emotions) get no link: `link_report` counts them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa

from ..config import EMOTIONS

ENTITY_EMOTIONS_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("turn_index", pa.int32()),
        ("entity_id", pa.int64()),
        ("emotions", pa.list_(pa.string())),
        ("probs", pa.list_(pa.float32())),
    ]
)
TURN_EMOTIONS_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("turn_index", pa.int32()),
        ("role", pa.string()),
        ("probs", pa.list_(pa.float32())),
        ("labels", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)
"""emotions/turn_emotions.parquet: one row per labelled user turn (`source`: classifier or seed)."""
_INDEX = {e: i for i, e in enumerate(EMOTIONS)}


def turn_entities(row: dict) -> list[int]:
    """Movie entities in the KG (>= 0) then linked entities, deduplicated, order kept."""
    out: list[int] = []
    for e in (*(row.get("movie_entities") or ()), *(row.get("entities") or ())):
        if e is not None and e >= 0 and e not in out:
            out.append(int(e))
    return out


def select_emotions(labels: list[str], probs, threshold: float, max_per_entity: int) -> tuple[list[str], list[float]]:
    """A turn's kept labels → (strongest-first labels with p > threshold, capped; their probs, not renormalised).

    If none pass the threshold, the turn's top kept label stays (its `labels` already hold that fallback)."""
    scored = sorted(((float(probs[_INDEX[l]]), l) for l in labels), key=lambda x: -x[0])
    kept = [(p, l) for p, l in scored if p > threshold] or scored[:1]
    kept = kept[:max_per_entity]
    return [l for _, l in kept], [p for p, _ in kept]


def link_entity_emotions(turns: pa.Table, turn_emotions: pa.Table, threshold: float, max_per_entity: int) -> pa.Table:
    """turns (tables/turns.parquet) + turn emotions (emotions/turn_emotions.parquet) → entity_emotions rows."""
    emo = {
        (r["conversation_id"], int(r["turn_index"])): r
        for r in turn_emotions.select(["conversation_id", "turn_index", "labels", "probs"]).to_pylist()
    }
    by_conv: dict[str, list[dict]] = defaultdict(list)
    cols = ["conversation_id", "turn_index", "role", "movie_entities", "entities"]
    for r in turns.select(cols).to_pylist():
        by_conv[r["conversation_id"]].append(r)

    rows = []
    for conv_id, conv in by_conv.items():
        conv.sort(key=lambda r: r["turn_index"])
        next_user: dict | None = None
        for r in reversed(conv):  # walk backwards so the user's next turn is known
            if r["role"] == "user":
                source = emo.get((conv_id, int(r["turn_index"])))
                next_user = source
            else:
                source = next_user
            if source is None or not source["labels"]:
                continue
            names, ps = select_emotions(source["labels"], source["probs"], threshold, max_per_entity)
            for e in turn_entities(r):
                rows.append(
                    {
                        "conversation_id": conv_id,
                        "turn_index": int(r["turn_index"]),
                        "entity_id": e,
                        "emotions": names,
                        "probs": ps,
                    }
                )
    rows.sort(key=lambda x: (x["conversation_id"], x["turn_index"]))
    return pa.Table.from_pylist(rows, schema=ENTITY_EMOTIONS_SCHEMA)


def link_report(turns: pa.Table, entity_emotions: pa.Table) -> dict:
    """How many turn-entity mentions got an emotion link (by role)."""
    mentions = {"user": 0, "recommender": 0}
    for r in turns.select(["role", "movie_entities", "entities"]).to_pylist():
        mentions[r["role"]] = mentions.get(r["role"], 0) + len(turn_entities(r))
    linked = len(entity_emotions)
    total = sum(mentions.values())
    return {
        "entity_mentions": mentions,
        "linked": linked,
        "unlinked": total - linked,
        "emotions_per_link": round(
            float(np.mean([len(x) for x in entity_emotions["emotions"].to_pylist()])) if linked else 0.0, 3
        ),
    }
