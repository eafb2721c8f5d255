"""Fine-tuning the conversation module: the generator's training code (`fit_chat_model`: transformers' Trainer in Ray
Train) on the conversation examples, written to <run_dir>/conversation/ (examples.parquet, ray/, adapter/,
manifest.json); resumable like the generator."""

from __future__ import annotations

from ..artifacts import Stage
from ..config import Config
from ..data import tables
from ..generator.train import TRAINING_RUNTIME, fit_chat_model
from .data import build_examples


def fit(cfg: Config, *, force: bool = False, run_name: str | None = None, stop_after_steps: int = 0) -> dict:
    return fit_chat_model(cfg, STAGE, build_examples, force=force, run_name=run_name, stop_after_steps=stop_after_steps)


INFERENCE = ("max_new_tokens", "do_sample", "temperature", "top_p", "repetition_penalty", "device", "dtype")
"""conversation fields that change how it is used, not what it learns: not in the stage's key."""

STAGE = Stage(
    "conversation",
    "conversation",
    "conversation",
    reads=(*(f"conversation.-{f}" for f in (*INFERENCE, "eval_resources", *TRAINING_RUNTIME)), "seed"),
    writes=("manifest.json",),
    fit=fit,
    jobs=("train_conversation",),
    resources={"train_conversation": ("conversation.train_resources", "conversation.eval_resources")},
    after=(tables.STAGE,),
)
