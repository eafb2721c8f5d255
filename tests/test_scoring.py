"""Generation metrics: offline ones on hand-made texts; the E.1 baseline and E.2 scorer through the project's own
OpenAI-compatible Ray Serve endpoint (ecr_ray/llm_server.py) over real HTTP on 127.0.0.1; ranking kappa."""

from __future__ import annotations

import random

import numpy as np

from ecr_ray.config import load_config
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import load_dataset_kg
from ecr_ray.prompts import METRICS
from ecr_ray.scoring import (
    aggregate,
    baseline_responses,
    distinct_n,
    emotion_intensity,
    make_client,
    offline_metrics,
    ranking_kappa,
    score_example,
)
from tests.conftest import item_id


def test_distinct_n():
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == 2 / 3
    assert distinct_n([], 2) == 0.0


def test_emotion_intensity_ignores_neutral():
    p = np.zeros((2, 9), dtype=np.float32)
    p[0, 5] = 0.9  # neutral
    p[0, 0] = 0.1
    p[1, 2] = 0.8  # happy
    assert np.allclose(emotion_intensity(p), [0.1, 0.8])


def test_hallucination_proxy_on_the_sample_kg():
    kg = load_dataset_kg(load_config("demo"))
    linker = EntityLinker.from_kg(kg)
    titanic = item_id(kg, "Titanic (1997)")  # Kate Winslet stars, James Cameron directed; Tom Hanks is unrelated
    m = offline_metrics(
        ["Kate Winslet is wonderful and James Cameron nailed it.", "Tom Hanks is great in it."],
        [titanic, titanic],
        kg,
        linker,
        {},
    )
    assert m["kg_entities_per_response"] == 1.5 and m["halluc_entities_per_response"] == 0.5
    assert m["responses_with_halluc"] == 0.5 and m["halluc_share_of_linked"] == round(1 / 3, 3)
    with_review = offline_metrics(
        ["Tom Hanks is great in it."],
        [titanic],
        kg,
        linker,
        {titanic: {"review_entities": [linker.link_ids("Tom Hanks")[0]]}},
    )
    assert with_review["halluc_entities_per_response"] == 0  # a review entity of the item is not a hallucination


def _rec(metric, scores, missing=()):
    return {"metric": metric, "scores": scores, "missing": list(missing), "answer": ""}


def test_aggregate_and_ranking_kappa():
    a = [[_rec("emo_int", {"x": 8, "y": 2, "z": 5})], [_rec("emo_int", {"x": 7, "y": 1, "z": 1})]]
    b = [[_rec("emo_int", {"x": 9, "y": 1, "z": 4})], [_rec("emo_int", {"x": 6, "y": 3, "z": 3})]]
    assert aggregate(a)["x"]["emo_int"] == 7.5 and aggregate(a)["y"]["_missing"] == 0
    assert ranking_kappa(a, b) == {"emo_int": 1.0, "mean": 1.0}  # same rankings, different scores
    c = [[_rec("emo_int", {"x": 1, "y": 9, "z": 5})], [_rec("emo_int", {"x": 1, "y": 7, "z": 9})]]
    assert ranking_kappa(a, c)["emo_int"] < 0.5


def test_baseline_and_scorer_over_http(endpoint):
    client = make_client(endpoint)
    hist = ["User: I love scary movies", "Recommender: What was the last one you saw?", "User: The Shining"]
    [resp] = baseline_responses(client, "smollm2-135m-instruct", [hist], ["Get Out (2017)"], max_tokens=24)
    assert resp
    recs = score_example(
        client,
        "smollm2-135m-instruct",
        "\n".join(hist),
        {"ecr": "Get Out (2017) is great. I loved it!", "base": resp},
        random.Random(0),
        metrics=("emo_int", "life"),
        max_tokens=24,
    )
    assert [r["metric"] for r in recs] == ["emo_int", "life"]
    for r in recs:  # whatever the small model answers: each model is either scored 0-9 or reported missing
        assert set(r["scores"]) | set(r["missing"]) == {"ecr", "base"}
        assert all(0 <= s <= 9 for s in r["scores"].values()) and r["answer"]
    assert set(METRICS) >= {r["metric"] for r in recs}
