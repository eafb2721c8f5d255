"""The recommender model and its data: co-occurrence matrix (Eq. 5), variant switches, emotions (Eq. 3-4, seed
fallback), feedback weights (Eq. 7). Real components: demo tables, the embedded MiniLM, torch-geometric RGCN."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ecr_ray.config import EMOTIONS, ConfigError, load_config
from ecr_ray.data.tables import build_tables
from ecr_ray.recommender.data import Mentions, Split, build_split, cooc_rows, cooccurrence_matrix, prepare
from ecr_ray.recommender.model import EmotionRecommender, weighted_loss

LINKS_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("turn_index", pa.int32()),
        ("entity_id", pa.int64()),
        ("emotions", pa.list_(pa.string())),
        ("probs", pa.list_(pa.float32())),
    ]
)


def links(rows):
    return pa.Table.from_pylist(
        [dict(zip(("conversation_id", "turn_index", "entity_id", "emotions", "probs"), r)) for r in rows],
        schema=LINKS_SCHEMA,
    )


def test_cooccurrence_counts_ordered_overlapping_pairs_row_normalised():
    t = links(
        [
            ("a", 0, 1, ["like"], [0.9]),
            ("a", 1, 2, ["like", "happy"], [0.5, 0.4]),
            ("a", 2, 3, ["negative"], [0.9]),
            ("a", 3, 4, ["happy"], [0.8]),
            ("a", 4, 1, ["happy"], [0.7]),
            ("b", 0, 1, ["like"], [0.9]),
            ("b", 1, 3, ["like"], [0.9]),
        ]
    )
    P = cooccurrence_matrix(t, {"a"}, 6)  # conversation b is not "train"
    dense = P.toarray()
    # a: 1→2 (like), 2→4 (happy), 2→1 (happy, later mention of 1), 4→1 (happy); 3 overlaps nobody
    assert dense[1].tolist() == [0, 0, 1, 0, 0, 0]
    assert dense[2, 4] == pytest.approx(0.5) and dense[2, 1] == pytest.approx(0.5)
    assert dense[4, 1] == 1 and dense[3].sum() == 0 and dense[:, 3].sum() == 0
    sums = np.asarray(P.sum(1)).ravel()
    assert np.all((np.abs(sums - 1) < 1e-6) | (sums == 0))


def test_cooccurrence_scales_sparsely():
    rng = np.random.default_rng(0)
    n_conv, per, n_ent = 10_000, 12, 31_161  # ~4x ReDial's train split, its KG size
    rows = [
        (str(c), j, int(rng.integers(n_ent)), [EMOTIONS[k] for k in rng.choice(9, 2, replace=False)], [0.5, 0.3])
        for c in range(n_conv)
        for j in range(per)
    ]
    t0 = time.perf_counter()
    P = cooccurrence_matrix(links(rows), {str(c) for c in range(n_conv)}, n_ent)
    assert time.perf_counter() - t0 < 30
    assert P.shape == (n_ent, n_ent) and P.nnz <= n_conv * per * (per - 1) // 2
    assert P.data.nbytes < 50e6  # sparse: a dense float32 31k² matrix would be 3.9 GB


def tiny_model(variant: str, n_ent=30, n_items=10, copy: bool = False) -> EmotionRecommender:
    cfg = load_config(
        "demo",
        {
            "recommender.variant": variant,
            "recommender.copy_mentioned": copy,
            "recommender.entity_dim": 32,
            "recommender.max_context_entities": 4,
            "recommender.max_context_turns": 3,
            "recommender.prompt_tokens": 2,
            "recommender.dropout": 0.0,
        },
    )
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, n_ent, (2, 80), generator=g)
    torch.manual_seed(0)
    return EmotionRecommender(
        cfg.recommender,
        num_entities=n_ent,
        num_relations=4,
        text_dim=16,
        edge_index=torch.stack([src, dst]),
        edge_type=torch.randint(0, 4, (80,), generator=g),
        item_ids=torch.arange(n_items),
    ).eval()


def tiny_batch(emo_ids, P=None):
    ents = np.array([[-1, 3, 12, 5], [-1, -1, -1, 7]])
    b = {
        "entities": torch.as_tensor(ents),
        "emo_ids": torch.as_tensor(emo_ids),
        "emo_probs": torch.full((2, 4, 3), 0.5),
        "turn_emb": torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(1)),
        "turn_mask": torch.tensor([[False, True, True], [True, True, True]]),
        "ent_age": torch.tensor([[-1, 2, 1, 0], [-1, -1, -1, 0]]),
        "ent_role": torch.tensor([[-1, 0, 1, 0], [-1, -1, -1, 1]]),
    }
    if P is not None:
        b["cooc"] = cooc_rows(P, ents)
    return b


@pytest.mark.parametrize("variant", ["baseline", "L", "LS", "LG", "full"])
def test_variant_switches(variant):
    import scipy.sparse as sp

    m = tiny_model(variant)
    P = sp.random(30, 30, density=0.2, format="csr", random_state=0, dtype=np.float32) if m.glob else None
    happy = np.full((2, 4, 3), -1)
    happy[:, :, 0] = EMOTIONS.index("happy")
    negative = np.full((2, 4, 3), -1)
    negative[:, :, 0] = EMOTIONS.index("negative")
    with torch.no_grad():
        a, b = m(tiny_batch(happy, P)), m(tiny_batch(negative, P))
    assert a.shape == (2, 10) and torch.isfinite(a).all()
    if variant == "baseline":
        assert m.fuse is None and torch.allclose(a, b)  # emotions are ignored
    else:
        assert not torch.allclose(a, b)  # Eq. 3-4: the entity's emotions change the scores
    if m.glob:  # Eq. 5: the co-occurrence rows change the scores
        with torch.no_grad():
            c = m(tiny_batch(happy, sp.csr_matrix(P.shape, dtype=np.float32)))
        assert not torch.allclose(a, c)


@pytest.mark.parametrize("copy", [False, True])
def test_training_step_reaches_every_component(copy):
    m = tiny_model("full", copy=copy).train()
    import scipy.sparse as sp

    P = sp.random(30, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    emo = np.full((2, 4, 3), -1)
    emo[:, :, :2] = [EMOTIONS.index("like"), EMOTIONS.index("happy")]
    opt = torch.optim.SGD(m.parameters(), lr=0.1)

    def step():
        opt.zero_grad()
        weighted_loss(m(tiny_batch(emo, P)), torch.tensor([1, 3]), torch.tensor([2.0, 0.5])).backward()

    step()
    names = ["kg.node.weight", "kg.conv.weight", "fuse.emb.weight", "fuse.mlp.0.weight", "prompt", "text.0.weight"]
    if copy:
        # the copy head's query starts at zero: the first step reaches the query, the place biases, α and the gate,
        # not yet the keys (q · k = 0); from the second step on, everything
        first = ["copy.query.weight", "copy.sentinel.bias", "copy.rank_bias.weight", "copy.prior_weight"]
        keys = ["copy.key.weight", "copy.age.weight", "copy.role.weight"]
        assert all(dict(m.named_parameters())[n].grad.abs().sum() > 0 for n in first)
        assert all(dict(m.named_parameters())[n].grad.abs().sum() == 0 for n in keys)
        opt.step()
        step()
        names += first + keys
    for name in names:
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_without_the_copy_head_the_scores_are_the_papers():
    """copy_mentioned off = the paper's scorer: no copy parameters, the mention features unread; on, the same weights
    rank the items not mentioned exactly as off does (the pointer only adds the mentioned ones and the gate)."""
    on, off = tiny_model("L", copy=True), tiny_model("L", copy=False)
    assert not any(k.startswith("copy.") for k in off.state_dict())
    off.load_state_dict({k: v for k, v in on.state_dict().items() if not k.startswith("copy.")})  # strict: all fit
    emo = np.full((2, 4, 3), -1)
    emo[:, :, 0] = EMOTIONS.index("like")
    b = tiny_batch(emo)
    with torch.no_grad():
        s_off, s_on = off(b), on(b)
        moved = off({**b, "ent_age": b["ent_age"] + 5, "ent_role": 1 - b["ent_role"].clamp(min=0)})
    assert torch.equal(s_off, moved)  # off: mention ages and speakers change nothing
    torch.testing.assert_close(s_on.exp().sum(1), torch.ones(2))  # on: log-probabilities
    mentioned = [{3, 5}, {7}]  # item entities among each row's context entities
    for row, items in enumerate(mentioned):
        rest = [i for i in range(10) if i not in items]
        shift = s_on[row, rest] - s_off[row, rest]
        torch.testing.assert_close(shift, shift[:1].expand_as(shift))  # one constant: log(gate) - logsumexp
        assert not torch.allclose(s_on[row, sorted(items)] - s_off[row, sorted(items)], shift[: len(items)])


def test_the_copy_head_learns_to_repeat_the_mentioned_movie_the_user_liked():
    """Tiny task: two mentioned movies, one the user liked and one they disliked; the target is the liked one. After
    training, the liked one ranks first, and swapping the two emotions swaps the top: the pointer reads what was said
    about each mentioned item."""
    torch.manual_seed(0)
    m = tiny_model("L", copy=True).train()
    rng = np.random.default_rng(0)

    like, negative = EMOTIONS.index("like"), EMOTIONS.index("negative")

    def batch(n: int):
        pairs = np.stack([rng.choice(10, 2, replace=False) for _ in range(n)])
        ents = np.full((n, 4), -1)
        ents[:, 2:] = pairs
        emo = np.full((n, 4, 3), -1)
        liked_slot = rng.integers(0, 2, n)
        emo[np.arange(n), 2 + liked_slot, 0] = like
        emo[np.arange(n), 3 - liked_slot, 0] = negative
        b = {
            "entities": torch.as_tensor(ents),
            "emo_ids": torch.as_tensor(emo),
            "emo_probs": torch.full((n, 4, 3), 0.9),
            "turn_emb": torch.randn(n, 3, 16),
            "turn_mask": torch.ones(n, 3, dtype=torch.bool),
            "ent_age": torch.as_tensor(np.where(ents >= 0, 1, -1)),
            "ent_role": torch.as_tensor(np.where(ents >= 0, 0, -1)),
        }
        return b, torch.as_tensor(pairs[np.arange(n), liked_slot]), torch.as_tensor(pairs[np.arange(n), 1 - liked_slot])

    test, liked, disliked = batch(200)
    e = test["emo_ids"]
    swapped = {**test, "emo_ids": torch.where(e == like, negative, torch.where(e == negative, like, e))}

    def top1(b, target) -> float:
        with torch.no_grad():
            return float((m.eval()(b).argmax(1) == target).float().mean())

    before = top1(test, liked)
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    m.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only waits (~1 s here, 40 s on a busy machine with 2)
    try:
        for _ in range(60):
            b, target, _ = batch(32)
            loss = weighted_loss(m(b), target, torch.ones(32))
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    after = top1(test, liked)
    assert before < 0.7 and after > 0.95, (before, after)
    assert top1(swapped, disliked) > 0.95  # the same movies, the emotions swapped: the other one now


def test_the_copy_heads_recency_places_are_the_repeat_rules_order():
    """n_j of the copy head: the place of each mentioned item, most recent first: later turns first, later slots
    first within a turn (evaluate.baseline_scores' order); padding and non-item slots get MAX_RANK."""
    from ecr_ray.recommender.layers import MAX_RANK, CopyHead

    age = torch.tensor([[-1, 3, 0, 1, 0], [2, 2, 2, -1, -1]])
    is_item = torch.tensor([[False, True, True, False, True], [True, True, True, False, False]])
    assert CopyHead.recency_rank(age, is_item).tolist() == [
        [MAX_RANK, 2, 1, MAX_RANK, 0],  # slot 3 (age 1) is not an item: slot 1 (age 3) is third
        [2, 1, 0, MAX_RANK, MAX_RANK],
    ]
    # the same order as the repeat baseline's ranking, by its own code, on random layouts
    from types import SimpleNamespace

    from ecr_ray.recommender.evaluate import baseline_scores

    rng = np.random.default_rng(0)
    ents = np.where(rng.random((50, 6)) < 0.8, rng.integers(0, 20, (50, 6)), -1)
    ents = np.stack([np.where(np.isin(np.arange(6), np.unique(r, return_index=True)[1]), r, -1) for r in ents])
    age = np.where(ents >= 0, rng.integers(0, 4, (50, 6)), -1)
    lookup = np.where(np.arange(20) < 12, np.arange(20), -1)  # entities 12-19 are not items
    split = SimpleNamespace(entities=ents, ent_age=age)
    scores = baseline_scores("repeat", split, np.arange(50), np.ones(12), lookup)
    slots = np.where(ents >= 0, lookup[ents.clip(0)], -1)
    places = CopyHead.recency_rank(torch.as_tensor(age), torch.as_tensor(slots >= 0)).numpy()
    for row in range(50):
        items = slots[row][slots[row] >= 0]
        by_rule = items[np.argsort(-scores[row, items], kind="stable")]
        assert by_rule.tolist() == items[np.argsort(places[row][slots[row] >= 0])].tolist()


def test_the_copy_head_learns_recency_without_a_query():
    """The repeat rule's knowledge in one term: targets always the most recent mentioned item, whatever the turns
    say (random text, neutral emotions, items at random slots). The pointer's place bias learns it: top-1 on the most
    recent mentioned item after a few steps, and place 0's bias above the others'."""
    torch.manual_seed(0)
    m = tiny_model("baseline", copy=True).train()
    rng = np.random.default_rng(0)

    def batch(n: int):
        ents = np.stack([rng.choice(10, 4, replace=False) for _ in range(n)])
        age = np.stack([rng.permutation(4) for _ in range(n)])
        b = {
            "entities": torch.as_tensor(ents),
            "emo_ids": torch.full((n, 4, 3), -1),
            "emo_probs": torch.zeros(n, 4, 3),
            "turn_emb": torch.randn(n, 3, 16),
            "turn_mask": torch.ones(n, 3, dtype=torch.bool),
            "ent_age": torch.as_tensor(age),
            "ent_role": torch.zeros(n, 4, dtype=torch.long),
        }
        return b, torch.as_tensor(ents[np.arange(n), age.argmin(1)])

    test, recent = batch(200)

    def top1() -> float:
        with torch.no_grad():
            return float((m.eval()(test).argmax(1) == recent).float().mean())

    before = top1()
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(40):
            b, target = batch(32)
            loss = weighted_loss(m.train()(b), target, torch.ones(32))
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert before < 0.5 and top1() > 0.95, (before, top1())
    bias = m.copy.rank_bias.weight[:4, 0].tolist()
    assert bias[0] > max(bias[1:]) + 0.2, bias  # the most recent place above the others


def test_a_copy_model_from_before_the_place_biases_gets_a_retrain_message(tmp_path):
    """A `+copy` model.pt written before the copy head had its place biases and α (f328436) names them and says to
    retrain, rather than serving a half-loaded head."""
    from ecr_ray.recommender.model import load_saved, saved_state

    old = {k: v for k, v in saved_state(tiny_model("L", copy=True)).items() if k not in NEW_COPY_PARAMS}
    torch.save(old, tmp_path / "model.pt")
    with pytest.raises(RuntimeError, match=r"missing \['copy.prior_weight', 'copy.rank_bias.weight'\].*--force"):
        load_saved(tiny_model("L", copy=True), tmp_path / "model.pt")


NEW_COPY_PARAMS = ("copy.rank_bias.weight", "copy.prior_weight")


@pytest.mark.parametrize("copy", [False, True])
def test_bf16_weights_as_deepspeed_makes_them_take_float_batches(copy):
    """DeepSpeed's bf16 casts the weights, not the batches (the paper recipe: ZeRO-2 + bf16): with the skeleton's
    boundary (ecr_ray.train.bf16_boundary) the float batch goes in as bf16, every layer (PyG's RGCN included) stays
    bf16, and the scores come back as float32 for the loss and the metrics; with the copy head too."""
    import scipy.sparse as sp

    from ecr_ray.train import bf16_boundary

    m = tiny_model("full", copy=copy).to(torch.bfloat16).train()
    bf16_boundary(m)
    P = sp.random(30, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    emo = np.full((2, 4, 3), -1)
    emo[:, :, 0] = EMOTIONS.index("like")
    scores = m(tiny_batch(emo, P))
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    weighted_loss(scores, torch.tensor([1, 2]), torch.tensor([2.0, 0.5])).backward()
    assert m.kg.conv.weight.grad.dtype == torch.bfloat16 and m.kg.conv.weight.grad.abs().sum() > 0


def test_weighted_loss_is_mean_of_weighted_ce():
    scores = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    ce = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 0]), reduction="none")
    assert weighted_loss(scores, torch.tensor([0, 0]), torch.tensor([2.0, 0.5])) == pytest.approx(
        float((ce * torch.tensor([2.0, 0.5])).mean())
    )


def test_emotions_come_from_mentions_before_the_target_turn():
    cfg = load_config("demo", {"recommender.max_context_entities": 3, "recommender.max_context_turns": 2})
    samples = pa.Table.from_pylist(
        [
            {
                "sample_id": "c-4-1",
                "conversation_id": "c",
                "turn_index": 4,
                "context_entities": [10, 11],
                "target_movie_id": "900",
                "target_item": 100,
                "liked": 0,
                "feedback": "dislike",
                "target_in_context": False,
            }
        ]
    )
    turn_row = {("c", i): 50 + i for i in range(6)}
    emotions = {
        ("c", 10): [(1, [0], [0.9]), (5, [4], [0.9])],  # the turn-5 mention is after the target turn
        ("c", 11): [(6, [2], [0.8])],
    }  # only mentioned later: no emotion
    turns = pa.Table.from_pylist(
        [
            {"conversation_id": "c", "turn_index": i, "role": ("user", "recommender")[i % 2], "split": "train"}
            | {"movie_ids": ["900"] if i == 5 else [], "movie_entities": [100] if i == 5 else [], "entities": []}
            | {"entities": [10] if i in (1, 5) else [11] if i == 6 else []}
            for i in range(7)
        ]
    )
    s = build_split(samples, turn_row, emotions, {100: 7}, cfg, Mentions(turns))
    assert s.turns.tolist() == [[52, 53]]
    assert s.entities.tolist() == [[-1, 10, 11]]
    assert s.emo_ids[0, 1].tolist() == [0, -1, -1] and s.emo_ids[0, 2].tolist() == [-1, -1, -1]
    assert s.target.tolist() == [7] and s.weight.tolist() == [1.0]  # variant full: dislike → 1.0
    # latest mentions before turn 4: entity 10 in turn 1 (recommender); 11 not yet
    assert s.ent_age.tolist() == [[-1, 2, -1]] and s.ent_role.tolist() == [[-1, 1, -1]]
    assert s.repeat.tolist() == [False]  # @900 is named only in turn 5, after the target turn


@pytest.fixture(scope="module")
def demo_tables(tmp_path_factory):
    """Demo tables + a shared embedding cache (the MiniLM pass over ~500 sample turns runs once)."""
    root = tmp_path_factory.mktemp("rec")
    cfg = load_config("demo", {"run_dir": str(root / "run")})
    build_tables(cfg)
    return root


def demo(root, **over):
    return load_config(
        "demo",
        {
            "run_dir": str(root / "run"),
            "recommender.cache_dir": str(root / "cache"),
            **{f"recommender.{k}": v for k, v in over.items()},
        },
    )


def test_prepare_full_with_the_seed_labels_asked_for_by_name(demo_tables):
    cfg = demo(demo_tables, variant="full", emotions_source="seed")
    s = prepare(cfg, demo_tables / "prep-full")
    assert s["emotions_source"] == "seed" and s["links"] > 0 and s["counts"]["cooccurrence_nnz"] > 0
    tr = Split.load(demo_tables / "prep-full" / "train.npz")
    assert s["counts"]["train"]["with_emotions"] > 0 and (tr.emo_probs[tr.emo_ids >= 0] > 0).all()
    fw = cfg.recommender.feedback_weights
    assert set(np.unique(tr.weight)) <= {fw["like"], fw["dislike"], fw["not_said"]}
    assert np.allclose(tr.weight[tr.liked == 1], fw["like"]) and np.allclose(tr.weight[tr.liked == 2], fw["not_said"])
    L = prepare(demo(demo_tables, variant="L", emotions_source="seed"), demo_tables / "prep-L")  # uniform, no matrix
    assert np.all(Split.load(demo_tables / "prep-L" / "train.npz").weight == 1.0)
    assert "cooccurrence_nnz" not in L["counts"]


def test_the_classifiers_entity_emotions_are_the_default_and_required(demo_tables, tmp_path):
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run"), "recommender.cache_dir": str(demo_tables / "cache")})
    shutil.copytree(demo_tables / "run" / "tables", tmp_path / "run" / "tables")
    with pytest.raises(FileNotFoundError, match="entity_emotions.parquet not found: run the emotion stage first"):
        prepare(cfg, tmp_path / "prep")  # no silent fallback to the seed labels
    turns = pq.read_table(tmp_path / "run" / "tables" / "turns.parquet").to_pylist()
    u = next(t for t in turns if t["role"] == "user" and t["movie_entities"])
    (tmp_path / "run" / "emotions").mkdir()
    pq.write_table(
        links([(u["conversation_id"], u["turn_index"], u["movie_entities"][0], ["nostalgia"], [0.7])]),
        tmp_path / "run" / "emotions" / "entity_emotions.parquet",
    )
    s = prepare(cfg, tmp_path / "prep")
    assert s["emotions_source"] == "file" and s["links"] == 1


def test_full_without_any_emotions_fails_clearly_baseline_still_trains(demo_tables, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(load_config("demo").data.resolved_dir(), data)
    shutil.rmtree(data / "emotions")
    over = {
        "data.data_dir": str(data),
        "run_dir": str(demo_tables / "run"),
        "recommender.cache_dir": str(demo_tables / "cache"),
    }
    with pytest.raises(FileNotFoundError, match="seed emotion labels|entity_emotions"):
        prepare(load_config("demo", {**over, "recommender.variant": "full"}), tmp_path / "p1")
    s = prepare(load_config("demo", {**over, "recommender.variant": "baseline"}), tmp_path / "p2")
    assert s["emotions_source"] == "none"
    with pytest.raises(ConfigError, match="only variant baseline"):
        load_config("demo", {"recommender.variant": "full", "recommender.emotions_source": "none"})
