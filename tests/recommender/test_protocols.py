"""The evaluation protocols (paper / new / norep, and the `repeated` view), the two rankings every model must beat
(popularity, repeat), the mention features of the copy head and UniCRS's prompt pre-training samples, on one dialogue
written out by hand and run through the data stage's own sample builder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ecr_ray.config import load_config
from ecr_ray.data.redial import recommendation_samples
from ecr_ray.data.tables import SAMPLES_SCHEMA, TURNS_SCHEMA
from ecr_ray.metrics import RankingAccumulator
from ecr_ray.recommender.data import ContextTokens, Mentions, build_split, pretrain_samples
from ecr_ray.recommender.evaluate import (
    baseline_scores,
    item_lookup,
    paired_bootstrap,
    protocol_tables,
    protocol_view,
    protocols_markdown,
)

# Entities 10-13 are movies (KG items), 20-21 a genre and a person. Turn by turn: who speaks, the @ids and their
# entities, the other linked entities.
DIALOGUE = [
    ("user", "Hi! I loved @111, I like comedies", ["111"], [10], [20]),
    ("recommender", "Have you seen @222?", ["222"], [11], []),
    ("user", "I hated it. Something with Jim Carrey?", [], [], [21]),
    ("recommender", "Then @111 again, or @333, a comedy", ["111", "333"], [10, 12], [20]),
    ("user", "Thanks!", [], [], []),
    ("recommender", "@222 is on TV tonight, and @444", ["222", "444"], [11, 13], []),
]
ITEMS = np.arange(10, 20)  # item index = entity - 10


def turns_table(split: str = "test") -> pa.Table:
    rows = [
        {
            "conversation_id": "c",
            "split": split,
            "turn_index": i,
            "role": role,
            "message_ids": [i],
            "text": text,
            "raw_text": text,
            "movie_ids": mids,
            "movie_entities": ments,
            "entities": ents,
        }
        for i, (role, text, mids, ments, ents) in enumerate(DIALOGUE)
    ]
    return pa.Table.from_pylist(rows, schema=TURNS_SCHEMA)


@pytest.fixture(scope="module")
def known():
    """The dialogue's recommendation samples (the data stage's `recommendation_samples`) and their arrays."""
    turns = turns_table()
    samples, _ = recommendation_samples(turns.to_pylist(), {("c", "111"): 1, ("c", "222"): 0})
    table = pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA)
    cfg = load_config("demo", {"recommender.max_context_entities": 6, "recommender.max_context_turns": 3})
    turn_row = {("c", i): i for i in range(len(DIALOGUE))}
    split = build_split(table, turn_row, {}, {int(e): i for i, e in enumerate(ITEMS)}, cfg, Mentions(turns))
    return table, split


def test_protocols_keep_the_samples_the_study_defines(known):
    table, s = known
    # one sample per movie a recommender turn names
    assert table["sample_id"].to_pylist() == ["c-1-222", "c-3-111", "c-3-333", "c-5-222", "c-5-444"]
    # `new` drops the targets named (@id) in an earlier turn: @111 at turn 3 (turn 0), @222 at turn 5 (turn 1)
    assert s.repeat.tolist() == [False, True, False, True, False]
    acc = RankingAccumulator(len(ITEMS))
    ranks_of = [0, 0, 20, 20, 0]  # hits at R@1 for samples 0, 1 and 4
    scores = np.zeros((5, len(ITEMS)))
    for i, t in enumerate(s.target):
        scores[i, t] = 1.0 if ranks_of[i] == 0 else -1.0
    acc.add(scores, s.target, s.liked, None, s.repeat)
    m = acc.compute()
    assert (m["n"], m["n_new"]) == (5, 3)
    assert m["r@1"] == pytest.approx(3 / 5) and m["r@1_new"] == pytest.approx(2 / 3)
    assert m["r@1_repeated"] == pytest.approx(1 / 2)  # the complement of `new`: samples 1 (hit) and 3 (miss)
    _, mask = protocol_view("new", {"repeat": s.repeat})
    assert mask.sum() == 3 and protocol_view("paper", {"repeat": s.repeat}) == (("r@1", "r@10", "r@50"), None)
    assert protocol_view("norep", {"repeat": s.repeat})[0] == ("r@1_norep", "r@10_norep", "r@50_norep")


def test_mention_ages_and_speakers(known):
    _, s = known
    # sample c-5-444: context entities in order of first mention 10, 20, 11, 21, 12; their latest mentions are turns
    # 3 (recommender), 3 (recommender), 1 (recommender), 2 (user), 3 (recommender); the target turn is 5
    i = 4
    assert s.entities[i].tolist() == [-1, 10, 20, 11, 21, 12]
    assert s.ent_age[i].tolist() == [-1, 1, 1, 3, 2, 1]
    assert s.ent_role[i].tolist() == [-1, 1, 1, 1, 0, 1]


def test_the_baselines_rank_as_defined(known):
    _, s = known
    counts = np.array([0, 5, 1, 9, 0, 0, 0, 0, 3, 3])  # train mentions of items 10..19
    lookup = item_lookup(ITEMS)
    pop = baseline_scores("popularity", s, np.arange(5), counts, lookup)
    assert np.argsort(-pop[0]).tolist()[:5] == [3, 1, 8, 9, 2]  # by count, ties by item index
    rep = baseline_scores("repeat", s, np.arange(5), counts, lookup)
    order = [np.argsort(-r).tolist() for r in rep]
    # c-1-222: only movie 10 was mentioned → it first, then popularity
    assert order[0][:4] == [0, 3, 1, 8]
    # c-3-111: 11 (turn 1) before 10 (turn 0): the most recent first → the target 10 ranks second
    assert order[1][:3] == [1, 0, 3]
    # c-5-*: 12 and 10 both last named in turn 3 (12 after 10), then 11 (turn 1), then popularity without them
    assert order[3][:5] == [2, 0, 1, 3, 8]
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_scores("random", s, np.arange(1), counts, lookup)


def test_paired_bootstrap_on_a_protocols_samples():
    rng = np.random.default_rng(0)
    n = 400
    base = {"rank": rng.integers(0, 100, n), "liked": rng.integers(0, 3, n), "sample_id": np.arange(n)}
    base["rank_norep"] = base["rank"]
    other = {**base, "rank": np.where(np.arange(n) < 200, 0, base["rank"])}  # a hit on the first half
    repeat = np.arange(n) >= 200
    d = paired_bootstrap(base, other, ("r@1", "r@10"), ~repeat, n_boot=200)
    expect = float((base["rank"][:200] >= 1).mean())
    assert d["r@1"]["diff"] == pytest.approx(expect) and d["r@1"]["ci95"][0] > 0
    assert "auc" not in d and "auc_global" not in d  # rankings without probabilities: recall only
    # on the other half nothing changed: a zero difference, a zero-width interval
    same = paired_bootstrap(base, other, ("r@1",), repeat, n_boot=50)
    assert same["r@1"]["diff"] == 0 and same["r@1"]["ci95"] == [0.0, 0.0]
    assert paired_bootstrap(base, {**other, "sample_id": np.arange(n) + 1}, ("r@1",)) == {}


def test_the_report_splits_repeated_targets_and_compares_each_copy_head_with_its_variant():
    """`repeated` keeps exactly the targets `new` drops; a `<variant>+copy` is compared with its `<variant>` on every
    protocol, a model without its copy-less twin is not."""
    rng = np.random.default_rng(1)
    n = 300
    repeat = np.arange(n) % 10 == 0  # 30 repeated targets
    base = {
        "rank": rng.integers(1, 100, n),
        "liked": rng.integers(0, 3, n),
        "sample_id": np.arange(n),
        "repeat": repeat,
    }
    base["rank_norep"] = base["rank"]
    copy = {**base, "rank": np.where(repeat, 0, base["rank"] + 5)}  # repeats first, the new targets 5 ranks lower
    runs = {"full": {"pred": base}, "full+copy": {"pred": copy}, "L+copy": {"pred": copy}}
    tables = protocol_tables(runs, {"repeat": {"pred": base}})
    new, repeated = protocol_view("new", base)[1], protocol_view("repeated", base)[1]
    assert repeated.sum() == 30 and not (new & repeated).any() and (new | repeated).all()
    assert tables["repeated"]["samples"] == 30 and tables["repeated"]["rows"]["full+copy"]["r@1"] == 1.0
    assert set(tables["paper"]["copy"]) == {"full+copy"}  # no `L` trained: nothing to compare L+copy with
    assert tables["repeated"]["copy"]["full+copy"]["r@1"]["diff"] == 1.0
    assert tables["new"]["copy"]["full+copy"]["r@10"]["diff"] < 0
    assert "The copy head, `full+copy` − `full`: R@1 +1.000" in protocols_markdown({"repeated": tables["repeated"]})


def test_pretraining_samples_are_unicrs(known):
    """UniCRS's `train_pre.py` data: every turn of either role, one sample per entity it names (movies, genres,
    people), the entities of the turns before it as context, the dialogue up to and including that turn as text."""
    turns = turns_table("train")
    pre = pretrain_samples(turns, Mentions(turns))
    rows = [(r["turn_index"], r["target_item"], r["context_entities"]) for r in pre.to_pylist()]
    assert rows == [
        (0, 10, []),
        (0, 20, []),
        (1, 11, [10, 20]),
        (2, 21, [10, 20, 11]),
        (3, 10, [10, 20, 11, 21]),
        (3, 12, [10, 20, 11, 21]),
        (3, 20, [10, 20, 11, 21]),
        (5, 11, [10, 20, 11, 21, 12]),
        (5, 13, [10, 20, 11, 21, 12]),
    ]
    assert set(pre["liked"].to_pylist()) == {2} and set(pre["split"].to_pylist()) == {"train"}
    over = {"recommender.variant": "full", "recommender.max_context_entities": 6, "recommender.max_context_tokens": 64}
    cfg = load_config("demo", over)
    ct = ContextTokens("minilm", "smollm2", 64)
    lines = [f"{'User' if r == 'user' else 'Recommender'}: {t}" for r, t, *_ in DIALOGUE]
    tokens = (ct, *ct.turns(lines))
    turn_row = {("c", i): i for i in range(len(DIALOGUE))}
    s = build_split(pre, turn_row, {}, None, cfg, Mentions(turns), tokens)
    assert s.target.tolist() == [10, 20, 11, 21, 10, 12, 20, 11, 13]  # entity ids, items or not
    assert (s.weight == 1.0).all()  # no feedback weights, variant full or not
    text = ct.plm.decode(s.plm_ids[2][s.plm_ids[2] >= 0])
    assert text.endswith("Recommender: Have you seen @222?" + ct.plm.eos_token)  # the response is in the context
    assert s.entities[2].tolist() == [-1, -1, -1, -1, 10, 20]
