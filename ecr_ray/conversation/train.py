"""Fine-tuning the conversation module: the generator's Train task (`GeneratorTask`) on the conversation examples,
written to <run_dir>/conversation/ (examples.parquet, ray/, adapter/, manifest.json); resumable like the generator."""

from __future__ import annotations

from ..config import Config


def fit(cfg: Config, run_name: str | None = None, stop_after_steps: int = 0, force: bool = False) -> dict:
    from ..generator.train import fit_chat_model
    from .data import build_examples

    return fit_chat_model(cfg, "conversation", build_examples, run_name, stop_after_steps, force)
