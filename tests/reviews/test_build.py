"""The emotional review DB: Appendix A.2 filters, sentence handling, linking (local loop and Ray Data), knowledge."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from ecr_ray.config import load_config
from ecr_ray.data.errors import DataError
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
from ecr_ray.reviews.knowledge import KNOWLEDGE_RELATIONS

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
    assert know.column_names == ["entity_id", "movie_name", "review_entities", "review_entity_names", "triples"]
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
    assert any(k["review_entities"] for k in know.to_pylist())
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
