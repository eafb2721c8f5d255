"""The `tune` section: Appendix B sweeps on Ray Tune."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import (
    STRICT,
    _check,
)


@dataclass
class TuneConfig:
    """Ray Tune sweeps (paper Appendix B), run by `ecr-ray tune`."""

    __pydantic_config__ = STRICT

    search_space: dict[str, Any] = field(default_factory=dict)
    """Per sweep: `feedback: {like: [...], dislike: [...], not_said: [...]}`, `knowledge: [[pn_t, pn_e], ...]` (an
    entry `[pn_t, pn_e, entities]` puts the triples' tails among the entities: generator.knowledge_format). Missing
    entries take the paper's grids (ecr_ray/tuning/space.py)."""
    full_grid: bool = False
    """feedback sweep: every combination instead of the paper's one-weight-at-a-time."""
    scheduler: str = "fifo"
    """`fifo`: every trial trains all its epochs (Appendix B.1) | `asha`: early-stop weak trials at epoch boundaries
    (faster, not the paper's protocol: a stopped trial has neither its kept model's metrics nor test metrics)."""
    grace_period: int = 1
    """ASHA: epochs a trial runs before it may be stopped."""
    evaluate_test: bool = True
    """feedback sweep: score each trial's kept model (best epoch by validation loss) on the test split too, reported
    beside its validation metrics (Figure 3 plots test RT@10/50). The best setting is still chosen on validation."""
    max_concurrent_trials: int = 1
    """Trials at once. On 2 cores keep 1: trial drivers compete with their own training workers."""
    driver_cpus: float = 0.01
    """CPU reserved by each trial's driver (it only waits on its TorchTrainer); a whole CPU deadlocks 2-core nodes."""
    knowledge_eval_samples: int = 50
    """knowledge sweep: validation contexts generated and scored per trial."""
    knowledge_train_steps: int = 0
    """knowledge sweep: LoRA steps per trial with that prompt format (0 = score the trained adapter as is)."""

    def __post_init__(self) -> None:
        _check(self.scheduler in ("asha", "fifo"), f"tune.scheduler: expected asha|fifo, got {self.scheduler!r}")
        unknown = set(self.search_space) - {"feedback", "knowledge"}
        _check(not unknown, f"tune.search_space: unknown sweep(s) {sorted(unknown)}; known: feedback, knowledge")
        _check(self.max_concurrent_trials >= 1, "tune.max_concurrent_trials: must be >= 1")
        _check(0 < self.driver_cpus <= 1, "tune.driver_cpus: must be in (0, 1]")
        _check(
            self.knowledge_eval_samples >= 1 and self.knowledge_train_steps >= 0,
            "tune.knowledge_eval_samples >= 1 and tune.knowledge_train_steps >= 0",
        )
