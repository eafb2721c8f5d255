"""The LLM emotion label JSONL (`emotions/redial_llm_labels.jsonl`, one record per merged seeker turn) → checked
seed rows. `ecr_ray.emotion.seeds.load_seeds` delegates here; matching the rows to turns stays there."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from ..config import EMOTIONS
from .errors import Invalid, InvalidRows, read_jsonl
from .schema import integer, list_of, nonempty_string, record, string


def emotion_labels(value: Any, path: str) -> None:
    """1-2 of the nine main emotion types (the paper's Table 8), strongest first."""
    if not (
        isinstance(value, list) and 1 <= len(value) <= 2 and all(isinstance(v, str) and v in EMOTIONS for v in value)
    ):
        raise Invalid(path, f"expected 1-2 of {EMOTIONS}, got {reprlib.repr(value)}")


SEED = record(
    {
        "conversation_id": nonempty_string,
        "message_ids": list_of(integer, min_len=1),
        "labels": emotion_labels,
        "raw": list_of(string),
    }
)
"""A label record as far as the loaders read it; `utterance`, `history` and `reason` are not read."""


def load_seeds(path: Path, invalid: InvalidRows | None = None) -> list[dict]:
    """Read and check the seed file; a bad row raises DataError naming the file, line and field (or, with an
    `invalid` that skips, is collected there). A turn labelled twice is an error: it would count twice."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (seed emotion labels; set --emotion.seed_labels)")
    first_line: dict[tuple, int] = {}

    def check(rec: dict, lineno: int) -> None:
        turn = (rec["conversation_id"], tuple(rec["message_ids"]))
        if turn in first_line:
            raise Invalid(
                "message_ids",
                f"turn {list(turn[1])} of conversation {turn[0]!r} already labelled at line {first_line[turn]}",
            )
        first_line[turn] = lineno

    return [rec for _, rec in read_jsonl(path, InvalidRows() if invalid is None else invalid, SEED, check)]
