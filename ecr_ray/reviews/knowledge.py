"""What the generator knows about a movie: KG triples with the movie as head over starring / writer /
productionCompany / director / musicComposer ("{movie}'s {relation} is {entity}", with their tail entities beside
them), and the review entities mentioned at least `generator.min_entity_mentions` times over its reviews (most
frequent first) that pass the review-entity filter (`filter_entities`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..data.kg import KnowledgeGraph, strip_disambiguation

KNOWLEDGE_RELATIONS = ("starring", "writer", "productionCompany", "director", "musicComposer")


def describe_triple(kg: KnowledgeGraph, h: int, r: int, t: int) -> str:
    return f"{kg.names[h]}'s {kg.relation_names[r]} is {tail_name(kg, t)}"


def tail_name(kg: KnowledgeGraph, t: int) -> str:
    """A triple tail as the prompt names it (and as review entities are named): no "(disambiguation)"."""
    return strip_disambiguation(kg.names[t])


def knowledge_triples(kg: KnowledgeGraph, movie: int) -> tuple[list[str], list[str]]:
    """(triple sentences, their tail entities' names), aligned: what `prompts.prompt_knowledge` takes."""
    triples = kg.triples_for(movie, KNOWLEDGE_RELATIONS)
    return [describe_triple(kg, *t) for t in triples], [tail_name(kg, t) for _, _, t in triples]


def kg_neighbours(kg: KnowledgeGraph, movie: int) -> set[int]:
    """The movie's 1-hop neighbours over KNOWLEDGE_RELATIONS (the tails of its knowledge triples)."""
    return {t for _, _, t in kg.triples_for(movie, KNOWLEDGE_RELATIONS)}


@dataclass(frozen=True)
class EntityFilter:
    """The authors' review-entity filter (`../shared/notes/ecr-method.md`, Generator). An entity linked in a movie's
    review is kept when it is a 1-hop KG neighbour of the movie over KNOWLEDGE_RELATIONS, or when it is globally
    frequent (≥ `min_global` mentions over all reviews) but not ubiquitous (mentioned in the reviews of ≤
    `max_movies` movies) and its name has ≥ `min_name_chars` characters. The reviews keep those (the training
    prompts' entities); a movie's knowledge keeps those of them mentioned ≥ `min_mentions` times over its reviews.
    `enabled=False` (`review_entity_filter: none`) keeps every linked entity; `min_mentions` still makes the movies'
    knowledge."""

    enabled: bool = True
    min_global: int = 20
    max_movies: int = 1970
    min_name_chars: int = 6
    min_mentions: int = 2

    @classmethod
    def of(cls, gcfg) -> EntityFilter:
        """From a GeneratorConfig."""
        return cls(
            enabled=gcfg.review_entity_filter == "authors",
            min_global=gcfg.review_entity_min_global,
            max_movies=gcfg.review_entity_max_movies,
            min_name_chars=gcfg.review_entity_min_name_chars,
            min_mentions=gcfg.min_entity_mentions,
        )


REMOVED = ("infrequent", "ubiquitous", "short_name")
"""Why the filter drops a (movie, entity) pair, in the order the rules are checked; a KG neighbour is never dropped."""


def filter_entities(reviews: list[dict], kg: KnowledgeGraph, f: EntityFilter) -> tuple[list[dict], dict]:
    """Linked reviews (`entity_id` = the movie, `mentions` = linked entity ids in order) → the same reviews with
    `mentions`, `entities` and `entity_names` reduced to the entities the filter keeps, and the counts, per (movie,
    entity) pair and per mention: linked, removed (by reason), kept (as neighbour / as frequent), and the pairs of
    the movies' knowledge (`movie_knowledge` with `min_mentions` on the returned reviews)."""
    pair_mentions: Counter = Counter()  # (movie, entity) → mentions over the movie's reviews
    total: Counter = Counter()  # entity → mentions over all reviews
    movies: dict[int, set[int]] = {}  # entity → movies whose reviews mention it
    for r in reviews:
        for e in r["mentions"]:
            pair_mentions[(r["entity_id"], e)] += 1
            total[e] += 1
            movies.setdefault(e, set()).add(r["entity_id"])
    neighbours: dict[int, set[int]] = {}
    removed, kept_as, keep = Counter(), Counter(), set()
    for movie, e in pair_mentions:
        kind, reason = "any", None
        if f.enabled:
            if e in neighbours.setdefault(movie, kg_neighbours(kg, movie)):
                kind = "neighbour"
            elif total[e] < f.min_global:
                reason = "infrequent"
            elif len(movies[e]) > f.max_movies:
                reason = "ubiquitous"
            elif len(tail_name(kg, e)) < f.min_name_chars:
                reason = "short_name"
            else:
                kind = "frequent"
        if reason:
            removed[reason] += 1
        else:
            keep.add((movie, e))
            kept_as[kind] += 1

    out = []
    for r in reviews:
        mentions = [e for e in r["mentions"] if (r["entity_id"], e) in keep]
        ids = list(dict.fromkeys(mentions))
        out.append({**r, "mentions": mentions, "entities": ids, "entity_names": [tail_name(kg, e) for e in ids]})
    in_knowledge = {p for p in keep if pair_mentions[p] >= f.min_mentions}
    counts = {
        "linked": {
            "entities": len(total),
            "movie_entity_pairs": len(pair_mentions),
            "mentions": sum(total.values()),
            "reviews_with_entities": sum(bool(r["mentions"]) for r in reviews),
        },
        "removed": {k: removed[k] for k in REMOVED},
        "kept_as": {"neighbour": kept_as["neighbour"], "frequent": kept_as["frequent"]} if f.enabled else {},
        "kept": {
            "entities": len({e for _, e in keep}),
            "movie_entity_pairs": len(keep),
            "mentions": sum(pair_mentions[p] for p in keep),
            "reviews_with_entities": sum(bool(r["mentions"]) for r in out),
        },
        "movie_knowledge": {
            "removed_few_mentions": len(keep) - len(in_knowledge),
            "entities": len({e for _, e in in_knowledge}),
            "movie_entity_pairs": len(in_knowledge),
        },
    }
    return out, counts


def movie_knowledge(reviews: list[dict], kg: KnowledgeGraph, min_mentions: int = 2) -> list[dict]:
    """One row per movie: review entities mentioned ≥ `min_mentions` times over its reviews (counted over the
    reviews' `mentions`: pass them through `filter_entities` first), and its triples with their tails."""
    counts: dict[int, Counter] = {}
    for r in reviews:
        counts.setdefault(r["entity_id"], Counter()).update(r.get("mentions", r["entities"]))
    rows = []
    for movie, c in sorted(counts.items()):
        ents = [e for e, n in sorted(c.items(), key=lambda x: (-x[1], x[0])) if n >= min_mentions]
        triples, tails = knowledge_triples(kg, movie)
        rows.append(
            {
                "entity_id": movie,
                "movie_name": kg.names[movie],
                "review_entities": ents,
                "review_entity_names": [tail_name(kg, e) for e in ents],
                "triples": triples,
                "triple_tails": tails,
            }
        )
    return rows


def load_knowledge(run_dir: Path) -> dict[int, dict]:
    """movie entity id → its movie_knowledge row."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / "reviews" / "movie_knowledge.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the review DB first (`ecr-ray build_reviews`)")
    table = pq.read_table(path)
    if "triple_tails" not in table.column_names:
        raise ValueError(f"{path}: built by an older ecr-ray (no triple_tails column); rerun `ecr-ray build_reviews`")
    return {r["entity_id"]: r for r in table.to_pylist()}
