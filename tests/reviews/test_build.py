"""The emotional review DB: Appendix A.2 filters, sentence handling, linking (local loop and Ray Data), the authors'
review-entity filter, knowledge."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from ecr_ray.config import load_config
from ecr_ray.data.errors import DataError
from ecr_ray.data.kg import KnowledgeGraph
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import load_dataset_kg
from ecr_ray.reviews.build import fit as build_review_db
from ecr_ray.reviews.data import (
    VARIANTS,
    filter_review,
    first_person_count,
    read_reviews,
    repetition_rate,
    split_sentences,
    trim_sentences,
)
from ecr_ray.reviews.knowledge import KNOWLEDGE_RELATIONS, EntityFilter, filter_entities, movie_knowledge

LONG = "I loved this movie so much and I watched it twice with my family because my kids adore the songs " * 3


def test_repetition_and_pronouns():
    assert repetition_rate("a b c d") == 0.0
    assert repetition_rate("go go go go") == 0.75
    assert repetition_rate("") == 0.0
    assert first_person_count("I think my dad and I'm sure me too, we") == 4


def test_sentences_split_and_trim():
    assert split_sentences("Great one.I recommend it!  Really?  Yes") == [
        "Great one.",
        "I recommend it!",
        "Really?",
        "Yes",
    ]
    assert split_sentences("Mr. Smith was fine. Ok.") == ["Mr.", "Smith was fine.", "Ok."]  # abbreviations split too
    assert trim_sentences(["a b c.", "d e.", "f g h."], 5) == ["a b c.", "d e."]
    assert trim_sentences(["one two three four five six."], 3) == ["one two three"]


@pytest.mark.parametrize(
    "text,helpful,variant,why",
    [
        ("too short but fine", None, "small", "min_words"),
        (" ".join(f"w{i}" for i in range(30)), 0, "small", "helpfulness"),
        (" ".join(f"w{i}" for i in range(30)), None, "small", None),  # no helpfulness field: not filtered on it
        ("spam " * 40, None, "small", "repetition"),
        (" ".join(f"w{i}" for i in range(130)), 10, "llama", "first_person"),
        (" ".join(f"w{i}" for i in range(60)), 10, "llama", "min_words"),
    ],
)
def test_filter_reasons(text, helpful, variant, why):
    kept, reason = filter_review(text, helpful, VARIANTS[variant])
    assert reason == why and (kept is None) == (why is not None)


def test_trim_to_max_words():
    text = " ".join(f"W{i} a{i} b{i} c{i} d{i}." for i in range(100))  # 500 distinct words
    kept, why = filter_review(text, None, VARIANTS["small"])
    assert why is None and len(kept.split()) <= 150 and kept.endswith(".")


def test_read_reviews_errors_name_the_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"resp": "x", "rec": ["Up (2009)"], "context": ["User: hi"]}) + "\n{broken\n")
    with pytest.raises(DataError, match=r"r\.jsonl.*2"):
        read_reviews(p, {"Up (2009)": 22})
    rows, dropped = read_reviews(p, {"Up (2009)": 22}, skip_invalid=True)
    assert len(rows) == 1 and dropped["invalid_row"] == 1 and rows[0]["first_sentence"] == "hi"
    rows, dropped = read_reviews(p, {}, skip_invalid=True)
    assert rows == [] and dropped["movie_not_in_kg"] == 1


def _check_db(run_dir, manifest, linker):
    reviews = pq.read_table(run_dir / "reviews" / "reviews.parquet")
    know = pq.read_table(run_dir / "reviews" / "movie_knowledge.parquet")
    assert reviews.column_names[:5] == ["entity_id", "movie_name", "review", "entities", "entity_names"]
    assert know.column_names == [
        "entity_id",
        "movie_name",
        "review_entities",
        "review_entity_names",
        "triples",
        "triple_tails",
    ]
    c = manifest["counts"]
    assert c["read"] == c["kept"] + sum(c["removed"].values()) and c["kept"] == reviews.num_rows > 0
    assert sum(c["removed"].values()) > 0  # the sample has short and repetitive reviews: each counted
    rows = reviews.to_pylist()
    for k in know.to_pylist():
        mentions = Counter(
            m.entity_id for r in rows if r["entity_id"] == k["entity_id"] for m in linker.link(r["review"])
        )
        assert all(mentions[e] >= 2 for e in k["review_entities"])
        assert [mentions[e] for e in k["review_entities"]] == sorted(
            (mentions[e] for e in k["review_entities"]), reverse=True
        )
        assert all(t.startswith(k["movie_name"] + "'s ") for t in k["triples"])
        assert {t.split("'s ", 1)[1].split(" is ")[0] for t in k["triples"]} <= set(KNOWLEDGE_RELATIONS)
        assert len(k["triple_tails"]) == len(k["triples"])
        assert all(t.endswith(f" is {tail}") for t, tail in zip(k["triples"], k["triple_tails"]))
    assert any(k["review_entities"] for k in know.to_pylist())
    e = manifest["review_entities"]
    assert e["filter"] == "authors" and e["min_global"] == 20 and e["max_movies"] == 1970
    assert e["linked"]["movie_entity_pairs"] == e["kept"]["movie_entity_pairs"] + sum(e["removed"].values())
    assert e["kept"]["movie_entity_pairs"] == sum(e["kept_as"].values())
    assert e["movie_knowledge"]["movie_entity_pairs"] == sum(len(k["review_entities"]) for k in know.to_pylist())
    return reviews.to_pylist(), know.to_pylist()


def test_build_local_and_ray_agree(demo_cfg, tmp_path):
    import ray

    linker = EntityLinker.from_kg(load_dataset_kg(demo_cfg))
    m_local = build_review_db(demo_cfg, engine="local")
    local = _check_db(demo_cfg.run_path, m_local, linker)
    ray_cfg = load_config("demo", {"run_dir": str(tmp_path / "ray")})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        m_ray = build_review_db(ray_cfg, engine="ray")
    finally:
        ray.shutdown()
    assert _check_db(ray_cfg.run_path, m_ray, linker) == local
    assert m_ray["counts"] == m_local["counts"] and m_ray["key"] == m_local["key"]


def test_llama_variant_is_stricter(demo_cfg):
    small = build_review_db(demo_cfg, engine="local")["counts"]["kept"]
    cfg = load_config("demo", {"run_dir": str(demo_cfg.run_path), "generator.review_filter": "llama"})
    m = build_review_db(cfg, engine="local")
    assert m["counts"]["kept"] < small and m["filter"]["min_first_person"] == 4


# ----------------------------------------------------------------------------- the authors' review-entity filter

NAMES = {
    0: "Movie A (2000)",
    1: "Movie B (2001)",
    2: "Rare Actor",  # starring in A, mentioned only in A's reviews
    3: "Comedy",  # A's genre (not a knowledge relation), mentioned in A's and B's reviews
    4: "Drama",  # frequent, but a 5-character name
    5: "Everywhere Thing",  # frequent, in the reviews of all three movies
    6: "Christmas Tradition",  # frequent, once in B's reviews, 3 times in C's
    7: "Obscure Thing",  # twice in A's reviews, nowhere else
    8: "Movie C (2002)",
    9: "Single Star",  # starring in A, mentioned once
}


def _tiny_kg() -> KnowledgeGraph:
    entities = {f"<http://dbpedia.org/resource/{n.replace(' ', '_')}>": i for i, n in NAMES.items()}
    relations = {"<http://dbpedia.org/ontology/starring>": 0, "<http://dbpedia.org/ontology/genre>": 1}
    triples = np.array([[0, 0, 2], [0, 1, 3], [0, 0, 9]], dtype=np.int64)
    return KnowledgeGraph(entities, relations, triples, np.array([0, 1, 8]))


def _linked(movie: int, mentions: list[int]) -> dict:
    return {"entity_id": movie, "mentions": mentions}


TINY = [
    _linked(0, [2, 3, 4, 4, 5, 7, 9]),
    _linked(0, [2, 3, 4, 4, 5, 7]),
    _linked(1, [3, 3, 5, 5, 6]),
    _linked(8, [5, 6, 6, 6]),
    _linked(8, [5]),
]
# global mentions: 2:2 3:4 4:4 5:6 6:4 7:2 9:1; movies mentioning 5: 3, every other entity: 1 or 2


def test_entity_filter_rules():
    kg = _tiny_kg()
    f = EntityFilter(min_global=4, max_movies=2, min_name_chars=6, min_mentions=2)
    out, counts = filter_entities(TINY, kg, f)
    kept = {(r["entity_id"], e) for r in out for e in r["entities"]}
    assert (0, 2) in kept and (0, 9) in kept  # KG neighbours (starring), kept although rare (2 and 1 mentions)
    assert (0, 3) in kept and (1, 3) in kept  # frequent (4), in 2 movies, 6 characters: kept (genre is no neighbour)
    assert (8, 6) in kept and (1, 6) in kept
    assert not {(0, 5), (1, 5), (8, 5)} & kept  # ubiquitous: in 3 > 2 movies' reviews
    assert (0, 4) not in kept  # "Drama": frequent but a 5-character name
    assert (0, 7) not in kept  # neither neighbour nor frequent
    assert out[0]["mentions"] == [2, 3, 9] and out[0]["entity_names"] == ["Rare Actor", "Comedy", "Single Star"]
    assert out[4]["entities"] == []
    assert counts["removed"] == {"infrequent": 1, "ubiquitous": 3, "short_name": 1}
    assert counts["kept_as"] == {"neighbour": 2, "frequent": 4}
    assert counts["linked"]["movie_entity_pairs"] == 11 and counts["kept"]["movie_entity_pairs"] == 6

    # A movie's knowledge: the kept entities mentioned at least twice over its reviews.
    know = {k["entity_id"]: k for k in movie_knowledge(out, kg, f.min_mentions)}
    assert know[0]["review_entities"] == [2, 3]  # "Single Star" (once) is not in A's knowledge
    assert know[1]["review_entities"] == [3]  # "Christmas Tradition" once in B's reviews: dropped there
    assert know[8]["review_entities"] == [6]  # ... and kept for C (3 mentions)
    assert know[0]["triple_tails"] == ["Rare Actor", "Single Star"]  # starring only: genre is no knowledge relation
    assert counts["movie_knowledge"] == {"removed_few_mentions": 2, "entities": 3, "movie_entity_pairs": 4}


def test_entity_filter_none_keeps_every_linked_entity():
    kg = _tiny_kg()
    out, counts = filter_entities(TINY, kg, EntityFilter(enabled=False))
    assert [r["mentions"] for r in out] == [r["mentions"] for r in TINY]
    assert counts["removed"] == {"infrequent": 0, "ubiquitous": 0, "short_name": 0}
    know = {k["entity_id"]: k for k in movie_knowledge(out, kg, 2)}
    assert know[0]["review_entities"] == [4, 2, 3, 5, 7]  # most mentioned first, then by id


def test_build_with_and_without_the_entity_filter(demo_cfg):
    authors = build_review_db(demo_cfg, engine="local")
    reviews = pq.read_table(demo_cfg.run_path / "reviews" / "reviews.parquet").to_pylist()
    cfg = load_config("demo", {"run_dir": str(demo_cfg.run_path), "generator.review_entity_filter": "none"})
    none = build_review_db(cfg, engine="local")
    assert none["key"] != authors["key"] and not none.get("skipped")  # the filter is part of the stage's key
    unfiltered = pq.read_table(cfg.run_path / "reviews" / "reviews.parquet").to_pylist()
    a, n = authors["review_entities"], none["review_entities"]
    assert a["linked"] == n["linked"] and n["kept"] == n["linked"]
    assert sum(a["removed"].values()) > 0 and a["kept"]["mentions"] < n["kept"]["mentions"]
    for r, u in zip(reviews, unfiltered):
        assert set(r["entities"]) <= set(u["entities"])
