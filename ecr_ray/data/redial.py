"""Raw ReDial conversations (official JSONL schema) → turns, per-movie user feedback, recommendation samples.

A *turn* is a run of consecutive messages by one speaker (all messageIds kept). The seeker (initiator) is the
`user`, the other worker the `recommender`. `@<movieId>` is rendered as the movie name; movie mentions become KG
entity ids through `kg/redial_movieid2entity.json`; other entities, movie titles written out included, come from the
offline linker. `titled` and `turn_mentions` are the two rules a served dialogue goes through as well, so serving
builds the recommender's inputs as training did (tests/recommender/test_train.py holds them equal).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, Invalid, InvalidRows, read_jsonl, read_text
from .kg import MOVIE_MAP, read_movie_map
from .linker import EntityLinker
from .schema import (
    describe,
    dict_of,
    digits,
    integer,
    list_of,
    nonempty_string,
    nullable,
    one_of,
    or_empty_list,
    record,
    string,
)

MENTION = re.compile(r"@(\d+)")
LIKED = {0: "dislike", 1: "like", 2: "not_said"}


def titled(raw: str, name_of) -> str:
    """A turn's text as models read it: every `@<movieId>` replaced by `name_of(movie id)`."""
    return MENTION.sub(lambda m: name_of(m.group(1)), raw)


def turn_mentions(
    raw: str, entity_of: dict[str, int], linker: EntityLinker | None
) -> tuple[list[str], list[int], list[int]]:
    """A turn's raw text → (its `@` movie ids in order of first mention, their KG entities (-1: not in the KG), the
    entities the linker finds in the rest of the text, movie titles written out included)."""
    movie_ids = list(dict.fromkeys(MENTION.findall(raw)))
    entities = linker.link_ids(MENTION.sub(" ", raw)) if linker else []
    return movie_ids, [entity_of.get(m, -1) for m in movie_ids], entities


# The raw ReDial schema, as far as the loader reads it (schema.py). Rules across fields are in check_conversation.
ANSWERS = or_empty_list(dict_of(digits, record({"liked": one_of(0, 1, 2)})))
"""initiatorQuestions / respondentQuestions: movieId → {suggested, seen, liked}; only `liked` is read."""
MESSAGE = record({"text": string, "senderWorkerId": integer, "messageId": integer})
CONVERSATION = record(
    {
        "conversationId": nonempty_string,
        "messages": list_of(MESSAGE, min_len=1),
        # movieId → name; the real train file has one null name (a movie no message mentions): no name given.
        "movieMentions": or_empty_list(dict_of(digits, nullable(string))),
        "initiatorWorkerId": integer,
    },
    optional={"respondentWorkerId": integer, "initiatorQuestions": ANSWERS, "respondentQuestions": ANSWERS},
)


def movie_name(value: Any, path: str) -> None:
    """A non-empty name on one line: a line break means a stray quote swallowed the rows after it."""
    nonempty_string(value, path)
    if "\n" in value or "\r" in value:
        raise Invalid(path, f"line break inside a quoted name (an unbalanced quote?): {describe(value)}")


MOVIE_ROW = record({"movieId": digits, "movieName": movie_name})
"""A row of movies_with_mentions.csv (nbMentions is not read)."""


def read_movie_names(path: Path) -> dict[str, str]:
    """movies_with_mentions.csv → movieId → name (whitespace collapsed). A side file: every problem is an error,
    a repeated movieId too (which name would win?)."""
    rows = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    names: dict[str, str] = {}
    first_line: dict[str, int] = {}
    try:
        header = next(rows)
        for column in ("movieId", "movieName"):
            if column not in header:
                raise DataError(path, 1, column, f"missing column (header: {','.join(header)})")
        for row in rows:
            if not row:
                continue
            line = rows.line_num
            if len(row) != len(header):
                raise DataError(path, line, "<row>", f"expected {len(header)} columns, got {len(row)}")
            rec = dict(zip(header, row))
            try:
                MOVIE_ROW(rec, "")
            except Invalid as e:
                raise DataError(path, line, e.field, e.problem) from None
            mid = rec["movieId"]
            if mid in names:
                raise DataError(path, line, "movieId", f"movie id {mid} repeated (first at line {first_line[mid]})")
            names[mid], first_line[mid] = " ".join(rec["movieName"].split()), line
    except csv.Error as e:
        raise DataError(path, rows.line_num, "<csv>", str(e)) from None
    if not names:
        raise DataError(path, None, "<file>", "no movies (only a header)")
    return names


@dataclass
class MovieCatalogue:
    """ReDial movie ids → names (movies_with_mentions.csv) and → KG entity ids (redial_movieid2entity.json)."""

    names: dict[str, str]
    entity_of: dict[str, int]

    @classmethod
    def load(cls, redial_dir: Path) -> MovieCatalogue:
        csv_path = redial_dir / "movies" / "movies_with_mentions.csv"
        names = read_movie_names(csv_path) if csv_path.exists() else {}
        map_path = redial_dir / "kg" / MOVIE_MAP
        movie_map = read_movie_map(map_path) if map_path.exists() else {}
        entity_of = {}
        for mid, info in movie_map.items():
            entity_of[mid] = info["entity_id"]
            names.setdefault(mid, " ".join(info["name"].split()))
        return cls(names, entity_of)


def _feedback(conv: dict) -> dict[str, tuple[int, str]]:
    """movieId → (liked 0/1/2, source). Seeker's answers first; respondent's answers when the seeker's are missing."""
    out: dict[str, tuple[int, str]] = {}
    for source in ("initiatorQuestions", "respondentQuestions"):
        for mid, ans in (conv.get(source) or {}).items():
            out.setdefault(mid, (ans["liked"], "initiator" if source == "initiatorQuestions" else "respondent"))
    return out


def check_conversation(conv: dict, movies: MovieCatalogue, seen: dict[str, str], where: str) -> None:
    """Rules across fields, on a conversation that fits CONVERSATION: message ids unique, every sender one of the
    two workers, every `@id` a known movie, the conversation id new (`seen`: id → where it was read first, shared
    by the splits so a conversation cannot be counted twice). Raises Invalid."""
    first_index: dict[int, int] = {}
    workers = (conv["initiatorWorkerId"], conv["respondentWorkerId"]) if "respondentWorkerId" in conv else None
    named = {mid for mid, name in (conv["movieMentions"] or {}).items() if name is not None}
    for j, msg in enumerate(conv["messages"]):
        msg_id = msg["messageId"]
        if msg_id in first_index:
            raise Invalid(
                f"messages[{j}].messageId", f"message id {msg_id} repeated (first at messages[{first_index[msg_id]}])"
            )
        first_index[msg_id] = j
        if workers and msg["senderWorkerId"] not in workers:
            raise Invalid(
                f"messages[{j}].senderWorkerId",
                f"sender {msg['senderWorkerId']} is neither initiatorWorkerId nor respondentWorkerId",
            )
        for movie in MENTION.findall(msg["text"]):
            if movie not in named and movie not in movies.names:
                raise Invalid(
                    f"messages[{j}].text",
                    f"unknown movie id @{movie} (no name in movieMentions nor the movie catalogue)",
                )
    cid = conv["conversationId"]
    if cid in seen:
        raise Invalid("conversationId", f"conversation {cid!r} already read at {seen[cid]}")
    seen[cid] = where


def parse_conversation(
    conv: dict, split: str, movies: MovieCatalogue, linker: EntityLinker | None
) -> tuple[list[dict], list[dict]]:
    """One checked raw conversation → (turn rows, feedback rows)."""
    cid = conv["conversationId"]
    mentions = {k: " ".join(v.split()) for k, v in (conv["movieMentions"] or {}).items() if v is not None}
    seeker = conv["initiatorWorkerId"]
    turns: list[dict] = []
    for msg in conv["messages"]:
        role = "user" if msg["senderWorkerId"] == seeker else "recommender"
        if turns and turns[-1]["role"] == role:
            turn = turns[-1]
        else:
            turn = {
                "conversation_id": cid,
                "split": split,
                "turn_index": len(turns),
                "role": role,
                "message_ids": [],
                "raw_parts": [],
            }
            turns.append(turn)
        turn["message_ids"].append(msg["messageId"])
        turn["raw_parts"].append(msg["text"])

    def name(mid: str) -> str:
        return mentions.get(mid) or movies.names.get(mid, f"@{mid}")

    for turn in turns:
        raw = " ".join(turn.pop("raw_parts"))
        turn["raw_text"] = raw
        turn["text"] = titled(raw, name)
        # movie_entities is aligned with movie_ids (-1 = a known ReDial movie that has no KG entity).
        turn["movie_ids"], turn["movie_entities"], turn["entities"] = turn_mentions(raw, movies.entity_of, linker)

    feedback = [
        {
            "conversation_id": cid,
            "split": split,
            "movie_id": mid,
            "movie_name": name(mid),
            "entity_id": movies.entity_of.get(mid, -1),
            "liked": liked,
            "feedback": LIKED[liked],
            "source": src,
        }
        for mid, (liked, src) in _feedback(conv).items()
    ]
    return turns, feedback


def recommendation_samples(
    turns: list[dict], feedback: dict[tuple[str, str], int], max_context_turns: int = 0
) -> tuple[list[dict], dict[str, int]]:
    """Each recommender turn that mentions KG-linked movies → one sample per movie: context turns before it,
    context entities (movies + linked entities, in order, unique), target item, the user's feedback on it.
    Returns (samples, counts of mentions that could not become samples, by reason)."""
    samples, skipped = [], {"no_context": 0, "not_in_kg": 0}
    for i, turn in enumerate(turns):
        if turn["role"] != "recommender" or not turn["movie_ids"]:
            continue
        ctx = turns[:i] if not max_context_turns else turns[max(0, i - max_context_turns) : i]
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
            samples.append(
                {
                    "sample_id": f"{turn['conversation_id']}-{turn['turn_index']}-{mid}",
                    "conversation_id": turn["conversation_id"],
                    "split": turn["split"],
                    "turn_index": turn["turn_index"],
                    "context": [f"{'User' if t['role'] == 'user' else 'Recommender'}: {t['text']}" for t in ctx],
                    "context_entities": list(context_entities),
                    "target_movie_id": mid,
                    "target_item": eid,
                    "liked": liked,
                    "feedback": LIKED[liked],
                    "target_in_context": eid in context_entities,
                    "response": turn["text"],
                }
            )
    return samples, skipped


def load_split(
    path: Path,
    split: str,
    movies: MovieCatalogue,
    linker: EntityLinker | None,
    invalid: InvalidRows,
    max_conversations: int = 0,
    keep=lambda cid: True,
    seen: dict[str, str] | None = None,
) -> tuple[list[dict], list[dict], int]:
    """Parse one raw ReDial JSONL file → (turns, feedback, conversations read). Pass the same `seen` to every split
    of a dataset so a conversation id read in two splits is caught too."""
    seen = {} if seen is None else seen

    def check(conv: dict, lineno: int) -> None:
        check_conversation(conv, movies, seen, f"{path.name}:{lineno}")

    turns, feedback, n = [], [], 0
    for _, conv in read_jsonl(path, invalid, CONVERSATION, check):
        if not keep(conv["conversationId"]):
            continue
        t, f = parse_conversation(conv, split, movies, linker)
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
