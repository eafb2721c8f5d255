"""jobs/label_emotions.py pieces that need no endpoint: turn selection, history, shard resolution, agreement."""

import pyarrow as pa

from ecr_ray.data.tables import TURNS_SCHEMA
from ecr_ray.labelling.data import SHARD_SCHEMA, resolve, sample, user_turns
from ecr_ray.labelling.evaluate import agreement


def _turns():
    rows = []
    for i in range(8):
        rows.append(
            {
                "conversation_id": "c",
                "split": "train",
                "turn_index": i,
                "role": "user" if i % 2 else "recommender",
                "message_ids": [i],
                "text": f"t{i}",
                "raw_text": "",
                "movie_ids": [],
                "movie_entities": [],
                "entities": [],
            }
        )
    return pa.Table.from_pylist(rows, schema=TURNS_SCHEMA)


def test_user_turns_carry_at_most_four_previous_turns():
    rows = user_turns(_turns())
    assert [r["turn_id"] for r in rows] == ["c:1", "c:3", "c:5", "c:7"]
    assert rows[0]["history"] == '[["recommender", "t0"]]'
    assert rows[3]["history"] == '[["user", "t3"], ["recommender", "t4"], ["user", "t5"], ["recommender", "t6"]]'


def test_sample_is_deterministic_subset():
    rows = user_turns(_turns())
    a, b = sample(rows, 2), sample(list(reversed(rows)), 2)
    assert a == b and len(a) == 2 and sample(rows, 0) == rows


def _row(turn_id, status, labels=()):
    return {"turn_id": turn_id, "status": status, "labels": list(labels), "raw": [], "unmapped": []}


def test_resolve_retried_errors_and_duplicates():
    t = pa.Table.from_pylist(
        [
            _row("a", "error"),
            _row("b", "ok", ["like"]),
            _row("a", "ok", ["happy"]),
            _row("c", "error"),
            _row("c", "error"),
        ],
        schema=SHARD_SCHEMA,
    )
    out, dup = resolve(t)
    assert dup == 0 and sorted(zip(out["turn_id"].to_pylist(), out["status"].to_pylist())) == [
        ("a", "ok"),
        ("b", "ok"),
        ("c", "error"),
    ]
    _, dup = resolve(pa.concat_tables([t, t]))
    assert dup == 2


def test_agreement_figures():
    t = pa.Table.from_pylist(
        [_row("a", "ok", ["like"]), _row("b", "ok", ["happy", "like"]), _row("c", "ok", [])], schema=SHARD_SCHEMA
    )
    a = agreement(t, {"a": ["like"], "b": ["like", "curious"], "c": ["negative"], "z": ["like"]})
    assert a["turns"] == 3 and a["exact_set"] == round(1 / 3, 4) and a["any_overlap"] == round(2 / 3, 4)
    assert a["first_label"] == round(1 / 3, 4) and a["micro_recall"] == round(2 / 4, 4) and a["no_label"] == 1
