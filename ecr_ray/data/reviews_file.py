"""The reviews JSONL (ECR-style samples: `resp` the review, `rec` [movie name], `context` ["User: ..."], optional
helpfulness) → raw review rows. `ecr_ray.reviews.read_reviews` delegates here; filtering and linking stay there."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .errors import InvalidRows, read_jsonl
from .schema import list_of, nullable, number, record, string

HELPFULNESS_FIELDS = ("helpfulness", "helpful_votes", "votes", "helpful")
"""The first of these present and not null is the review's helpfulness; none present = not filtered on it."""
REVIEW = record(
    {"resp": string, "rec": list_of(string, min_len=1)},
    optional={"context": list_of(string), **{f: nullable(number) for f in HELPFULNESS_FIELDS}},
)
_SPEAKER = re.compile(r"^(User|Recommender|System):\s*")


def _helpfulness(row: dict) -> float | None:
    return next((float(row[f]) for f in HELPFULNESS_FIELDS if row.get(f) is not None), None)


def read_reviews(
    path: Path, item_ids_by_name: dict[str, int], skip_invalid: bool = False, invalid: InvalidRows | None = None
) -> tuple[list[dict], Counter]:
    """Rows {entity_id, movie_name, review, first_sentence, helpfulness} of reviews whose movie is a KG item, plus
    drop counts (`invalid_row`, `movie_not_in_kg`). `invalid`, when given, collects the skipped rows themselves
    (its `skip` then decides, not `skip_invalid`)."""
    invalid = InvalidRows(skip=skip_invalid) if invalid is None else invalid
    skipped_before = len(invalid.errors)
    rows, dropped = [], Counter()
    for _, r in read_jsonl(path, invalid, REVIEW):
        name = " ".join(r["rec"][0].split())
        eid = item_ids_by_name.get(name)
        if eid is None:
            dropped["movie_not_in_kg"] += 1
            continue
        first = _SPEAKER.sub("", (r.get("context") or [""])[-1]).strip()
        rows.append(
            {
                "entity_id": eid,
                "movie_name": name,
                "review": r["resp"],
                "first_sentence": first,
                "helpfulness": _helpfulness(r),
            }
        )
    if len(invalid.errors) > skipped_before:
        dropped["invalid_row"] = len(invalid.errors) - skipped_before
    return rows, dropped
