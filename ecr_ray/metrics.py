"""Recommendation metrics of the ECR paper (section 5.3), computed the way the authors' code does, plus two
robustness variants.

- R@k: the labelled item is in the top k (every sample).            RT@k: the same over samples the user liked.
- AUC (ECR): per consecutive evaluation batch of `auc_batch_size` (authors: 32) samples, the softmax probability of
  each sample's labelled item; liked vs disliked samples compared pairwise (ties 0.5); averaged over the batches
  that contain both kinds. It depends on batch composition, so we also report
- AUC (global): scikit-learn ROC-AUC of the same probabilities over all liked / disliked samples.
- R@k / RT@k "norep": items already mentioned in the dialogue context are removed from the ranking, so a target
  repeated from the context can no longer be hit (the repetition shortcut, ~10% of ReDial test targets).
- R@k / RT@k "new": only the samples whose target was not named earlier in the dialogue (Kostric & Balog, SIGIR 2026:
  the "dedup" protocol of their standardized ReDial re-evaluation); the ranking is the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KS = (1, 10, 50)


def ecr_auc(probs: np.ndarray, liked: np.ndarray, batch_size: int = 32) -> float:
    """ECR's AUC: mean over consecutive batches (with ≥1 liked and ≥1 disliked sample) of the pairwise win rate
    of liked over disliked samples' target probabilities (ties count 0.5). NaN when no batch qualifies."""
    aucs = []
    for s in range(0, len(probs), batch_size):
        p, l = probs[s : s + batch_size], liked[s : s + batch_size]
        pos, neg = p[l == 1], p[l == 0]
        if len(pos) and len(neg):
            diff = pos[:, None] - neg[None, :]
            aucs.append(float(((diff > 0) + 0.5 * (diff == 0)).mean()))
    return float(np.mean(aucs)) if aucs else float("nan")


def global_auc(probs: np.ndarray, liked: np.ndarray) -> float:
    """ROC-AUC of the target probability for liked (1) vs disliked (0) samples; NaN without both kinds."""
    from sklearn.metrics import roc_auc_score

    m = (liked == 0) | (liked == 1)
    y = liked[m]
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, probs[m]))


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target among all items (ties broken pessimistically: equal scores rank above)."""
    t = scores[np.arange(len(targets)), targets]
    return (scores > t[:, None]).sum(1) + (scores == t[:, None]).sum(1) - 1


@dataclass
class RankingAccumulator:
    """Streams evaluation batches (scores over all items) and computes every metric at the end, so the full
    [n, n_items] score matrix is never held."""

    num_items: int
    auc_batch_size: int = 32
    ranks: list = field(default_factory=list)
    ranks_norep: list = field(default_factory=list)
    probs: list = field(default_factory=list)
    liked: list = field(default_factory=list)
    repeat: list = field(default_factory=list)

    def add(
        self,
        scores: np.ndarray,
        targets: np.ndarray,
        liked: np.ndarray,
        context_items: list[np.ndarray] | None = None,
        repeat: np.ndarray | None = None,
    ) -> None:
        """One batch: scores over every item, the targets, the feedback (1 liked), the items of each sample's context
        (for `norep`) and whether each target was named earlier in the dialogue (for `new`; None: all new)."""
        scores = np.asarray(scores, dtype=np.float64)
        targets = np.asarray(targets)
        if scores.shape != (len(targets), self.num_items):
            raise ValueError(f"scores: expected shape ({len(targets)}, {self.num_items}), got {scores.shape}")
        z = scores - scores.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        self.probs.append(p[np.arange(len(targets)), targets])
        self.ranks.append(target_ranks(scores, targets))
        masked = scores.copy()
        for i, items in enumerate(context_items or []):
            masked[
                i, np.asarray(items, dtype=np.int64)
            ] = -np.inf  # a repeated target lands at -inf: never in any top k
        r = target_ranks(masked, targets)
        r[~np.isfinite(masked[np.arange(len(targets)), targets])] = self.num_items
        self.ranks_norep.append(r)
        self.liked.append(np.asarray(liked))
        self.repeat.append(np.zeros(len(targets), bool) if repeat is None else np.asarray(repeat, bool))

    def compute(self, ks: tuple[int, ...] = KS) -> dict[str, float]:
        if not self.ranks:
            raise ValueError("no evaluation batches were added")
        ranks, norep = np.concatenate(self.ranks), np.concatenate(self.ranks_norep)
        probs, liked = np.concatenate(self.probs), np.concatenate(self.liked)
        new = ~np.concatenate(self.repeat)
        like = liked == 1
        out: dict[str, float] = {
            "n": int(len(ranks)),
            "n_liked": int(like.sum()),
            "n_disliked": int((liked == 0).sum()),
            "n_new": int(new.sum()),
            "auc": ecr_auc(probs, liked, self.auc_batch_size),
            "auc_global": global_auc(probs, liked),
        }
        for k in ks:
            out[f"r@{k}"] = recall(ranks, k)
            out[f"rt@{k}"] = recall(ranks[like], k)
            out[f"r@{k}_norep"] = recall(norep, k)
            out[f"rt@{k}_norep"] = recall(norep[like], k)
            out[f"r@{k}_new"] = recall(ranks[new], k)
            out[f"rt@{k}_new"] = recall(ranks[new & like], k)
            out[f"r@{k}_repeated"] = recall(ranks[~new], k)
        return out


def recall(ranks: np.ndarray, k: int) -> float:
    """Share of 0-based target ranks below k (NaN without samples)."""
    return float((ranks < k).mean()) if len(ranks) else float("nan")
