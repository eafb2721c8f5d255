"""Shaping the generator's training targets (generator/data.py) on hand-written reviews and the demo KG's linker."""

from __future__ import annotations

from dataclasses import replace

from ecr_ray.config import GeneratorConfig, load_config
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import load_dataset_kg
from ecr_ray.generator.data import shape_target, training_targets


def test_targets_start_at_the_knowledge_without_viewing_claims():
    kg = load_dataset_kg(load_config("demo"))
    linker = EntityLinker.from_kg(kg)
    hanks = linker.link_ids("Tom Hanks")[0]
    review = (
        "I just saw this last night with my kids. What a ride. The toys are alive. Tom Hanks is perfect as Woody. "
        "I was 8 years old when I first saw it."
    )
    paper = GeneratorConfig()
    assert " ".join(shape_target(review, {hanks}, paper, linker)) == review  # the paper's: the review as it is
    cpu = replace(paper, review_target="knowledge", drop_viewing_claims=True)
    assert shape_target(review, {hanks}, cpu, linker) == ["The toys are alive.", "Tom Hanks is perfect as Woody."]
    assert shape_target(review, set(), cpu, linker) == [
        "What a ride.",
        "The toys are alive.",
        "Tom Hanks is perfect as Woody.",
    ]
    only_claims = "I just saw it yesterday. We went to the cinema tonight."
    assert shape_target(only_claims, set(), cpu, linker) == ["We went to the cinema tonight."]  # never empty


def test_no_more_than_max_same_opening_targets_share_four_words():
    reviews = [{"review": "This is one of the best. Great cast.", "entities": []} for _ in range(4)]
    capped = training_targets(reviews, GeneratorConfig(max_same_opening=2))
    assert capped == ["This is one of the best. Great cast."] * 2 + ["Great cast."] * 2
    assert training_targets(reviews, GeneratorConfig()) == ["This is one of the best. Great cast."] * 4
