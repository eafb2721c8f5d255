"""Utterance-level user-emotion classifier: a pre-trained encoder + a 9-way head, trained with focal loss.

The head is a softmax over the nine emotions (EMOTIONS order) trained on soft multi-label targets (a turn with
two seed labels has target 0.5/0.5), so the probabilities sum to 1 the way ECR's labels do: β = 0.1 keeps the
labels that carry real mass, and Recall@2 ranks them. Focal loss (Lin et al.) down-weights the easy, dominant
labels (like/curious); optional per-label weights lift the rare ones (negative, surprise, nostalgia).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EMOTIONS, Config
from .data import NUM_EMOTIONS


class EmotionClassifier(nn.Module):
    """Encoder → masked mean pooling → dropout → linear(9) logits."""

    def __init__(self, backbone: str, dropout: float = 0.1):
        """`backbone`: a folder or hub id transformers loads (`ecr_ray.hub.resolve` of the config's name)."""
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(backbone)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, NUM_EMOTIONS)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax focal loss on soft targets: mean over rows of −Σ_c w_c t_c (1 − p_c)^γ log p_c."""
    logp = F.log_softmax(logits, dim=-1)
    loss = -targets * (1.0 - logp.exp()).pow(gamma) * logp
    if weights is not None:
        loss = loss * weights
    return loss.sum(-1).mean()


# ----------------------------------------------------------------------------- save / load


def save_classifier(model: EmotionClassifier, tokenizer, out_dir: Path, meta: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out_dir / "backbone")
    tokenizer.save_pretrained(out_dir / "backbone")
    torch.save(model.head.state_dict(), out_dir / "head.pt")
    (out_dir / "meta.json").write_text(json.dumps({"emotions": list(EMOTIONS), **meta}, indent=2))


def model_dir(cfg: Config) -> Path:
    return cfg.run_path / "emotions" / "classifier" / "model"


def load_classifier(path: str | Path, dtype=None) -> tuple[EmotionClassifier, object, dict]:
    """(model in eval mode, tokenizer, meta) from a folder written by `save_classifier`."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"{path}/meta.json not found: train the classifier first (`ecr-ray train_emotion`)")
    meta = json.loads((path / "meta.json").read_text())
    if tuple(meta["emotions"]) != EMOTIONS:
        raise ValueError(f"{path}: trained on emotions {meta['emotions']}, expected {list(EMOTIONS)}")
    model = EmotionClassifier(str(path / "backbone"))
    model.head.load_state_dict(torch.load(path / "head.pt", map_location="cpu", weights_only=True))
    if dtype is not None:
        model = model.to(dtype)
    return model.eval(), AutoTokenizer.from_pretrained(path / "backbone"), meta
