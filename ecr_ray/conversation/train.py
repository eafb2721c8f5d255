"""Fine-tuning the conversation module: the generator's training code (`fit_chat_model`: transformers' Trainer in Ray
Train) on the conversation examples, written to <run_dir>/conversation/ (examples.parquet, ray/, adapter/,
manifest.json); resumable like the generator."""

from __future__ import annotations

from ..config import Config
from ..generator.train import fit_chat_model
from .data import build_examples


def fit(cfg: Config, run_name: str | None = None, stop_after_steps: int = 0, force: bool = False) -> dict:
    return fit_chat_model(cfg, "conversation", build_examples, run_name, stop_after_steps, force)
