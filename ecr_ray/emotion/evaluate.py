"""How well the emotion classifier ranks and thresholds the seed labels: Recall@k (the paper reports Recall@2) and
per-label precision / recall / F1 of the labelling rule (p > β, top-1 fallback)."""

from __future__ import annotations

import numpy as np

from ..config import EMOTIONS
from ..hub import device as resolve_device
from ..hub import dtype as resolve_dtype
from .data import EMOTION_INDEX, keep_labels, targets_from_labels
from .predictor import EmotionPredictor


def recall_at_k(probs: np.ndarray, y: np.ndarray, k: int = 2) -> float:
    """Mean over rows with ≥ 1 gold label of |top-k ∩ gold| / |gold|."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    gold = y.sum(1)
    keep = gold > 0
    return float((hits[keep] / gold[keep]).mean()) if keep.any() else float("nan")


def evaluate(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Recall@1/2/3, and per-label precision/recall/F1 of the labelling rule."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = np.zeros_like(y)
    for i, p in enumerate(probs):
        for l in keep_labels(p, threshold, fallback_top=True):
            pred[i, EMOTION_INDEX[l]] = 1.0
    p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    per_label = {
        e: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, e in enumerate(EMOTIONS)
    }
    return {
        "rows": int(len(y)),
        "recall@1": round(recall_at_k(probs, y, 1), 4),
        "recall@2": round(recall_at_k(probs, y, 2), 4),
        "recall@3": round(recall_at_k(probs, y, 3), 4),
        "negative_recall": per_label["negative"]["recall"],
        "micro_f1": round(float(f1_score(y, pred, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 4),
        "labels_per_row": round(float(pred.sum(1).mean()), 3),
        "threshold": threshold,
        "per_label": per_label,
    }


def evaluate_saved(
    path: str, texts: list[str], labels: list[list[str]], threshold: float, device: str = "auto", dtype: str = "auto"
) -> dict:
    """The saved classifier at `path` on labelled texts (run as a Ray task: the driver loads no model)."""
    on = resolve_device(device)
    pred = EmotionPredictor.from_dir(path, dtype=resolve_dtype(dtype, on), device=on)
    return evaluate(pred.predict(texts), targets_from_labels(labels), threshold)
