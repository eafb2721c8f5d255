"""ECR-style metrics: AUC per batch of 32 vs global AUC, Recall / Recall_True, the no-repetition variants."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecr_ray.metrics import RankingAccumulator, ecr_auc, global_auc, target_ranks


def test_ecr_auc_by_hand_with_ties_and_batches():
    probs = np.array([0.9, 0.1, 0.5, 0.5, 0.3, 0.2])
    liked = np.array([1, 0, 1, 0, 2, 2])
    # one batch of 6: liked {0.9, 0.5} vs disliked {0.1, 0.5}: wins 0.9>0.1, 0.9>0.5, 0.5>0.1, tie 0.5 → 3.5/4
    assert ecr_auc(probs, liked, batch_size=32) == pytest.approx(0.875)
    # batches of 2: [1,0] → 1.0, [1,0] tie → 0.5, [2,2] has neither → skipped
    assert ecr_auc(probs, liked, batch_size=2) == pytest.approx(0.75)
    assert np.isnan(ecr_auc(probs[:1], liked[:1]))


def test_global_auc_matches_sklearn_and_ignores_not_said():
    rng = np.random.default_rng(0)
    probs, liked = rng.random(200), rng.integers(0, 3, 200)
    m = liked < 2
    assert global_auc(probs, liked) == pytest.approx(roc_auc_score(liked[m], probs[m]))
    assert np.isnan(global_auc(probs, np.ones(200, int)))


def test_ecr_auc_depends_on_batch_composition_global_does_not():
    probs = np.array([0.9, 0.8, 0.1, 0.05])
    liked = np.array([1, 0, 1, 0])
    assert ecr_auc(probs, liked, 2) == pytest.approx(1.0)  # within-batch comparisons only
    assert global_auc(probs, liked) == pytest.approx(0.75)


def test_target_ranks_pessimistic_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.2]])
    assert target_ranks(scores, np.array([1]))[0] == 1  # tied with item 2: counted below it
    assert target_ranks(scores, np.array([3]))[0] == 2


def test_recall_recall_true_and_norep():
    acc = RankingAccumulator(num_items=60, auc_batch_size=32)
    scores = np.tile(-np.arange(60, dtype=float), (4, 1))  # item i has rank i for every sample
    targets = np.array([0, 5, 20, 55])
    liked = np.array([1, 0, 1, 2])
    context = [np.array([0]), np.array([1, 2]), np.array([]), np.array([])]
    acc.add(scores[:2], targets[:2], liked[:2], context[:2])
    acc.add(scores[2:], targets[2:], liked[2:], context[2:])
    m = acc.compute()
    assert m["n"] == 4 and m["n_liked"] == 2 and m["n_disliked"] == 1
    assert m["r@1"] == 0.25 and m["r@10"] == 0.5 and m["r@50"] == 0.75
    assert m["rt@1"] == 0.5 and m["rt@10"] == 0.5 and m["rt@50"] == 1.0
    # sample 0's target is in its context: no longer a hit; sample 1 moves up 2 places (still < 10)
    assert m["r@1_norep"] == 0.0 and m["r@10_norep"] == 0.25 and m["rt@50_norep"] == 0.5
    assert 0.0 <= m["auc"] <= 1.0


def test_shape_mismatch_is_an_error():
    acc = RankingAccumulator(num_items=5)
    with pytest.raises(ValueError, match="expected shape"):
        acc.add(np.zeros((2, 4)), np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="no evaluation"):
        RankingAccumulator(num_items=5).compute()
