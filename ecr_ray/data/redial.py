"""Raw ReDial conversations (official JSONL schema) → turns, per-movie user feedback, recommendation samples.

A *turn* is a run of consecutive messages by one speaker (all messageIds kept). The seeker (initiator) is the
`user`, the other worker the `recommender`. `@<movieId>` is rendered as the movie name; movie mentions become KG
entity ids through `kg/redial_movieid2entity.json`; other entities come from the offline linker.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, InvalidRows, read_jsonl
from .linker import EntityLinker

MENTION = re.compile(r"@(\d+)")
REQUIRED = ("conversationId", "messages", "movieMentions", "initiatorWorkerId")
LIKED = {0: "dislike", 1: "like", 2: "not_said"}


@dataclass
class MovieCatalogue:
    """ReDial movie ids → names (movies_with_mentions.csv) and → KG entity ids (redial_movieid2entity.json)."""

    names: dict[str, str]
    entity_of: dict[str, int]

    @classmethod
    def load(cls, redial_dir: Path) -> "MovieCatalogue":
        import json

        names: dict[str, str] = {}
        csv_path = redial_dir / "movies" / "movies_with_mentions.csv"
        if csv_path.exists():
            with open(csv_path, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    names[row["movieId"]] = " ".join(row["movieName"].split())
        map_path = redial_dir / "kg" / "redial_movieid2entity.json"
        movie_map = json.loads(map_path.read_text(encoding="utf-8")) if map_path.exists() else {}
        entity_of = {}
        for mid, info in movie_map.items():
            entity_of[mid] = int(info["entity_id"])
            names.setdefault(mid, " ".join(str(info["name"]).split()))
        return cls(names, entity_of)


def _feedback(conv: dict) -> dict[str, tuple[int, str]]:
    """movieId → (liked 0/1/2, source). Seeker's answers first; respondent's answers when the seeker's are missing."""
    out: dict[str, tuple[int, str]] = {}
    for source in ("initiatorQuestions", "respondentQuestions"):
        answers = conv.get(source)
        if not isinstance(answers, dict):
            continue
        for mid, ans in answers.items():
            if mid in out or not isinstance(ans, dict) or ans.get("liked") not in (0, 1, 2):
                continue
            out[mid] = (int(ans["liked"]), "initiator" if source == "initiatorQuestions" else "respondent")
    return out


def parse_conversation(conv: dict, path: Path, lineno: int, split: str, movies: MovieCatalogue,
                       linker: EntityLinker | None) -> tuple[list[dict], list[dict]]:
    """One raw conversation → (turn rows, feedback rows). Raises DataError naming file, line and field."""
    cid = str(conv["conversationId"])
    mentions = {str(k): " ".join(str(v).split()) for k, v in (conv.get("movieMentions") or {}).items()}
    if not isinstance(conv["messages"], list) or not conv["messages"]:
        raise DataError(path, lineno, "messages", "expected a non-empty list of messages")
    seeker = conv["initiatorWorkerId"]
    turns: list[dict] = []
    for j, msg in enumerate(conv["messages"]):
        for key in ("text", "senderWorkerId", "messageId"):
            if key not in msg:
                raise DataError(path, lineno, f"messages[{j}].{key}", "missing required field")
        text = str(msg["text"])
        ids = MENTION.findall(text)
        for mid in ids:
            if mid not in mentions and mid not in movies.names:
                raise DataError(path, lineno, f"messages[{j}].text",
                                f"unknown movie id @{mid} (not in movieMentions nor the movie catalogue)")
        role = "user" if msg["senderWorkerId"] == seeker else "recommender"
        if turns and turns[-1]["role"] == role:
            turn = turns[-1]
        else:
            turn = {"conversation_id": cid, "split": split, "turn_index": len(turns), "role": role,
                    "message_ids": [], "raw_parts": [], "movie_ids": []}
            turns.append(turn)
        turn["message_ids"].append(int(msg["messageId"]))
        turn["raw_parts"].append(text)
        turn["movie_ids"].extend(m for m in ids if m not in turn["movie_ids"])

    def name(mid: str) -> str:
        return mentions.get(mid) or movies.names.get(mid, f"@{mid}")

    for turn in turns:
        raw = " ".join(turn.pop("raw_parts"))
        turn["raw_text"] = raw
        turn["text"] = MENTION.sub(lambda m: name(m.group(1)), raw)
        # Aligned with movie_ids; -1 = a known ReDial movie that has no KG entity.
        turn["movie_entities"] = [movies.entity_of.get(m, -1) for m in turn["movie_ids"]]
        # Link the free text only: movie titles are already resolved through their @ids.
        turn["entities"] = linker.link_ids(MENTION.sub(" ", raw)) if linker else []

    feedback = [{"conversation_id": cid, "split": split, "movie_id": mid, "movie_name": name(mid),
                 "entity_id": movies.entity_of.get(mid, -1), "liked": liked, "feedback": LIKED[liked], "source": src}
                for mid, (liked, src) in _feedback(conv).items()]
    return turns, feedback


def recommendation_samples(turns: list[dict], feedback: dict[tuple[str, str], int],
                           max_context_turns: int = 0) -> tuple[list[dict], dict[str, int]]:
    """Each recommender turn that mentions KG-linked movies → one sample per movie: context turns before it,
    context entities (movies + linked entities, in order, unique), target item, the user's feedback on it.
    Returns (samples, counts of mentions that could not become samples, by reason)."""
    samples, skipped = [], {"no_context": 0, "not_in_kg": 0}
    for i, turn in enumerate(turns):
        if turn["role"] != "recommender" or not turn["movie_ids"]:
            continue
        ctx = turns[:i] if not max_context_turns else turns[max(0, i - max_context_turns):i]
        context_entities: dict[int, None] = {}
        for t in turns[:i]:
            for e in t["movie_entities"] + t["entities"]:
                if e >= 0:
                    context_entities.setdefault(e, None)
        for mid, eid in zip(turn["movie_ids"], turn["movie_entities"]):
            if i == 0:
                skipped["no_context"] += 1
                continue
            if eid < 0:
                skipped["not_in_kg"] += 1
                continue
            liked = feedback.get((turn["conversation_id"], mid), 2)
            samples.append({
                "sample_id": f"{turn['conversation_id']}-{turn['turn_index']}-{mid}",
                "conversation_id": turn["conversation_id"], "split": turn["split"],
                "turn_index": turn["turn_index"],
                "context": [f"{'User' if t['role'] == 'user' else 'Recommender'}: {t['text']}" for t in ctx],
                "context_entities": list(context_entities),
                "target_movie_id": mid, "target_item": eid,
                "liked": liked, "feedback": LIKED[liked],
                "target_in_context": eid in context_entities,
                "response": turn["text"],
            })
    return samples, skipped


def load_split(path: Path, split: str, movies: MovieCatalogue, linker: EntityLinker | None, invalid: InvalidRows,
               max_conversations: int = 0, keep=lambda cid: True) -> tuple[list[dict], list[dict], int]:
    """Parse one raw ReDial JSONL file → (turns, feedback, conversations read)."""
    turns, feedback, n = [], [], 0
    for lineno, conv in read_jsonl(path, invalid, REQUIRED):
        if not keep(str(conv["conversationId"])):
            continue
        try:
            t, f = parse_conversation(conv, path, lineno, split, movies, linker)
        except DataError as e:
            invalid.handle(e)
            continue
        turns.extend(t)
        feedback.extend(f)
        n += 1
        if max_conversations and n >= max_conversations:
            break
    return turns, feedback, n


def group_by_conversation(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["conversation_id"], []).append(r)
    return out


def as_feedback_index(feedback: list[dict]) -> dict[tuple[str, str], int]:
    return {(f["conversation_id"], f["movie_id"]): f["liked"] for f in feedback}

