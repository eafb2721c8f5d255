"""Entity-emotion links: user turns → their own emotions, recommender turns → the user's next turn."""

import pyarrow as pa
import pytest

from ecr_ray.config import EMOTIONS
from ecr_ray.data.tables import TURNS_SCHEMA
from ecr_ray.emotion.links import ENTITY_EMOTIONS_SCHEMA, link_entity_emotions, select_emotions


def probs(**kw):
    return [kw.get(e, 0.0) for e in EMOTIONS]


def turn(conv, i, role, movies=(), ents=()):
    return {
        "conversation_id": conv,
        "split": "train",
        "turn_index": i,
        "role": role,
        "message_ids": [i],
        "text": "t",
        "raw_text": "t",
        "movie_ids": [str(m) for m in movies],
        "movie_entities": list(movies),
        "entities": list(ents),
    }


@pytest.fixture
def tables():
    turns = [
        turn("c1", 0, "user", movies=[10], ents=[11]),  # own emotions
        turn("c1", 1, "recommender", movies=[20, -1]),  # -1 = movie not in the KG: ignored
        turn("c1", 2, "recommender", ents=[21]),  # both recommender turns → user turn 3
        turn("c1", 3, "user"),
        turn("c1", 4, "recommender", movies=[30]),  # no later user turn → no link
        turn("c2", 0, "recommender", movies=[40]),  # next user turn has no emotions row → no link
        turn("c2", 1, "user", ents=[41]),
    ]
    emo = pa.table(
        {
            "conversation_id": ["c1", "c1"],
            "turn_index": pa.array([0, 3], pa.int32()),
            "role": ["user", "user"],
            "probs": pa.array(
                [
                    probs(like=0.6, happy=0.3, curious=0.05, grateful=0.05),
                    probs(negative=0.5, curious=0.2, like=0.15, surprise=0.15),
                ],
                pa.list_(pa.float32()),
            ),
            "labels": [["like", "happy"], ["negative", "curious", "like", "surprise"]],
            "source": ["classifier", "classifier"],
        }
    )
    return pa.Table.from_pylist(turns, schema=TURNS_SCHEMA), emo


def test_links_follow_ecr(tables):
    turns, emo = tables
    out = link_entity_emotions(turns, emo, threshold=0.1, max_per_entity=3)
    assert out.schema == ENTITY_EMOTIONS_SCHEMA
    rows = {(r["turn_index"], r["entity_id"]): r for r in out.to_pylist()}
    assert set(rows) == {(0, 10), (0, 11), (1, 20), (2, 21)}
    assert rows[(0, 10)]["emotions"] == ["like", "happy"]
    # recommender mentions take the user's reaction (turn 3), capped at 3, strongest first, not renormalised
    assert rows[(1, 20)]["emotions"] == ["negative", "curious", "like"]
    assert rows[(2, 21)]["probs"] == pytest.approx([0.5, 0.2, 0.15])


def test_max_per_entity_and_threshold(tables):
    turns, emo = tables
    out = link_entity_emotions(turns, emo, threshold=0.25, max_per_entity=1).to_pylist()
    assert {r["entity_id"]: r["emotions"] for r in out} == {
        10: ["like"],
        11: ["like"],
        20: ["negative"],
        21: ["negative"],
    }


def test_select_falls_back_to_top_label():
    p = probs(like=0.05, curious=0.04)
    assert select_emotions(["like"], p, 0.1, 3) == (["like"], [pytest.approx(0.05)])
