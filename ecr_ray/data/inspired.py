"""INSPIRED dialogues in UniCRS format (`*_data_dbpedia.jsonl`: one dialogue per line, a list of turns with
`role`, `text`, `movie_link`, `entity_link`) → the same turn rows as ReDial. INSPIRED carries no per-movie
feedback answers, so every target is "not said"."""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidRows, read_jsonl
from .schema import list_of, one_of, record, string

LINKS = list_of(string)
TURN = record(
    {"role": one_of("SEEKER", "RECOMMENDER"), "text": string},
    optional={"movie_link": LINKS, "movie": LINKS, "movie_name": LINKS, "entity_link": LINKS},
)
DIALOG = list_of(TURN, min_len=1)
"""One line of the UniCRS INSPIRED file, as far as the loader reads it (schema.py)."""


def load_split(
    path: Path, split: str, entity2id: dict[str, int], invalid: InvalidRows, max_conversations: int = 0
) -> tuple[list[dict], list[dict], int]:
    turns: list[dict] = []
    n = 0
    for lineno, dialog in read_jsonl(path, invalid, DIALOG):
        cid = f"{path.stem.split('_')[0]}-{lineno}"
        conv: list[dict] = []
        for j, t in enumerate(dialog):
            role = "user" if t["role"] == "SEEKER" else "recommender"
            movie_uris = t.get("movie_link") or []
            movie_names = t.get("movie") or t.get("movie_name") or []
            if conv and conv[-1]["role"] == role:
                turn = conv[-1]
                turn["text"] += " " + t["text"]
            else:
                turn = {
                    "conversation_id": cid,
                    "split": split,
                    "turn_index": len(conv),
                    "role": role,
                    "message_ids": [],
                    "text": t["text"],
                    "movie_ids": [],
                    "movie_entities": [],
                    "entities": [],
                }
                conv.append(turn)
            turn["message_ids"].append(j)
            for k, uri in enumerate(movie_uris):
                mid = movie_names[k] if k < len(movie_names) else uri
                if mid not in turn["movie_ids"]:
                    turn["movie_ids"].append(mid)
                    turn["movie_entities"].append(entity2id.get(uri, -1))
            for uri in t.get("entity_link") or []:
                eid = entity2id.get(uri)
                if eid is not None and eid not in turn["entities"]:
                    turn["entities"].append(eid)
        for turn in conv:
            turn["raw_text"] = turn["text"]
        turns.extend(conv)
        n += 1
        if max_conversations and n >= max_conversations:
            break
    return turns, [], n
