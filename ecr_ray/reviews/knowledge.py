"""What the generator knows about a movie: KG triples with the movie as head over starring / writer /
productionCompany / director / musicComposer ("{movie}'s {relation} is {entity}"), and the review entities mentioned
at least `generator.min_entity_mentions` times over its reviews (most frequent first)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..data.kg import KnowledgeGraph, strip_disambiguation

KNOWLEDGE_RELATIONS = ("starring", "writer", "productionCompany", "director", "musicComposer")


def describe_triple(kg: KnowledgeGraph, h: int, r: int, t: int) -> str:
    return f"{kg.names[h]}'s {kg.relation_names[r]} is {strip_disambiguation(kg.names[t])}"


def movie_triples(kg: KnowledgeGraph, movie: int) -> list[str]:
    return [describe_triple(kg, *t) for t in kg.triples_for(movie, KNOWLEDGE_RELATIONS)]


def movie_knowledge(reviews: list[dict], kg: KnowledgeGraph, min_mentions: int = 2) -> list[dict]:
    """One row per movie: review entities mentioned ≥ `min_mentions` times over its reviews, and its triples."""
    counts: dict[int, Counter] = {}
    for r in reviews:
        counts.setdefault(r["entity_id"], Counter()).update(r.get("mentions", r["entities"]))
    rows = []
    for movie, c in sorted(counts.items()):
        ents = [e for e, n in sorted(c.items(), key=lambda x: (-x[1], x[0])) if n >= min_mentions]
        rows.append(
            {
                "entity_id": movie,
                "movie_name": kg.names[movie],
                "review_entities": ents,
                "review_entity_names": [strip_disambiguation(kg.names[e]) for e in ents],
                "triples": movie_triples(kg, movie),
            }
        )
    return rows


def load_knowledge(run_dir: Path) -> dict[int, dict]:
    """movie entity id → its movie_knowledge row."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / "reviews" / "movie_knowledge.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the review DB first (`ecr-ray build_reviews`)")
    return {r["entity_id"]: r for r in pq.read_table(path).to_pylist()}
