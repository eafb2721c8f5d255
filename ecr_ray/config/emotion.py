"""The `emotion` section: LLM seed labels and the emotion classifier (the `emotions` stage, `label_emotions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import (
    EMOTIONS,
    STRICT,
    Resources,
    _check,
    _check_device,
)


@dataclass
class EmotionConfig:
    """User-emotion labelling (LLM seed labels) and the emotion classifier."""

    __pydantic_config__ = STRICT

    # --- LLM labelling (jobs/label_emotions.py); the API key comes from OPENAI_API_KEY only
    llm_base_url: str = ""
    """OpenAI-compatible endpoint for LLM labelling; empty = the project's own embedded-model server."""
    llm_model: str = ""
    """Model name sent to the endpoint. Empty: with `llm_base_url` empty, the model the project's own endpoint serves
    (`generator.base_model`'s id: `smollm2-135m-instruct` for the embedded model); required with `llm_base_url`.
    With `llm_base_url` empty a name the own endpoint does not serve is refused before any request."""
    llm_concurrency: int = 4
    """Requests in flight per labelling actor (bounded thread pool)."""
    llm_resources: Resources = field(default_factory=lambda: Resources(workers=1, cpus=0.1))
    """Ray Data actors sending the requests (`workers` of them; in flight = workers × llm_concurrency). They only
    wait on HTTP, hence a tenth of a CPU each."""
    llm_timeout_s: float = 120.0
    """Per-request timeout; a timeout is retried like a 429/5xx."""
    llm_max_retries: int = 5
    """Attempts per request beyond the first (exponential backoff with jitter)."""
    llm_max_tokens: int = 64
    """Completion budget per turn (the emotion words come first, then the reasons)."""
    llm_temperature: float = 0.0
    llm_shard_rows: int = 16
    """Rows per resumable Parquet shard (a kill loses at most the shards in flight)."""
    llm_subset: str = "all"
    """Which user turns to label: `all` or `seeded` (only turns that have seed labels, to measure agreement)."""
    llm_max_turns: int = 0
    """Label at most this many turns (deterministic sample by turn id hash; 0 = all)."""
    llm_price_prompt_per_1k: float = 0.0
    """USD per 1k prompt tokens, for the cost estimate (0 for the local model)."""
    llm_price_completion_per_1k: float = 0.0
    """USD per 1k completion tokens, for the cost estimate."""
    seed_labels: str = ""
    """Seed-label JSONL; empty = `<data_dir>/emotions/redial_llm_labels.jsonl`."""
    # --- classifier (ecr_ray/models/emotion.py, jobs/train_emotion.py)
    classifier_model: str = "minilm"
    """Classifier backbone: `minilm` (embedded all-MiniLM-L6-v2) or a path / hub id."""
    threshold: float = 0.1
    """β: keep labels with probability above this."""
    max_emotions_per_entity: int = 3
    """n_f: at most this many emotions attached to one entity."""
    focal_gamma: float = 2.0
    """Focal-loss γ."""
    class_weight_power: float = 0.5
    """Per-label loss weight ∝ (label frequency)^-power, mean 1 (0 = uniform; 0.5 = inverse square root)."""
    valid_fraction: float = 0.15
    """Share of seed-labelled conversations (by id hash) held out for validation."""
    device: str = "auto"
    """Where labelling and serving compute (Ray Train follows the resources): auto (CUDA where the process sees a
    GPU, else CPU) | cpu | cuda."""
    dtype: str = "auto"
    """auto (bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16. Training on CUDA autocasts to bf16 unless
    float32; training on the CPU runs float32."""
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    max_train_rows: int = 0
    """Train on at most this many seed rows (0 = all); for quick runs."""
    train_resources: Resources = field(default_factory=lambda: Resources(workers=1, cpus=2))
    """Ray Train workers fine-tuning the classifier."""
    max_failures: int = 2
    """Ray Train FailureConfig: restarts from the latest checkpoint (a lost worker or node) before the run fails."""
    label_resources: Resources = field(default_factory=lambda: Resources(workers=2, cpus=1))
    """Ray Data actor pool labelling every user turn (and the Ray task scoring the validation split)."""
    label_batch_size: int = 128
    seed_override: bool = False
    """Seed-labelled turns keep their seed labels (source `seed`) instead of the classifier's."""

    def __post_init__(self) -> None:
        _check(0.0 <= self.threshold < 1.0, f"emotion.threshold: must be in [0, 1), got {self.threshold}")
        _check_device("emotion", self.device, self.dtype)
        _check(1 <= self.max_emotions_per_entity <= len(EMOTIONS), "emotion.max_emotions_per_entity: 1..9")
        _check(self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0, "emotion.epochs/batch_size/lr must be > 0")
        _check(self.llm_concurrency >= 1, "emotion.llm_concurrency: must be >= 1")
        _check(self.llm_timeout_s > 0 and self.llm_max_retries >= 0, "emotion.llm_timeout_s > 0, llm_max_retries >= 0")
        _check(self.llm_max_tokens >= 1 and self.llm_shard_rows >= 1, "emotion.llm_max_tokens/llm_shard_rows >= 1")
        _check(
            self.llm_subset in ("all", "seeded"), f"emotion.llm_subset: expected all|seeded, got {self.llm_subset!r}"
        )
        _check(self.llm_max_turns >= 0 and self.max_train_rows >= 0, "emotion.llm_max_turns/max_train_rows >= 0")
        _check(0.0 < self.valid_fraction < 1.0, f"emotion.valid_fraction: must be in (0, 1), got {self.valid_fraction}")
        _check(self.focal_gamma >= 0 and self.class_weight_power >= 0, "emotion.focal_gamma/class_weight_power >= 0")
        _check(self.label_batch_size >= 1, "emotion.label_batch_size: must be >= 1")
        _check(self.max_failures >= 0, f"emotion.max_failures: must be >= 0, got {self.max_failures}")

    def seed_path(self, data_dir: Path) -> Path:
        """The seed-label file: `seed_labels`, else `<data_dir>/emotions/redial_llm_labels.jsonl`."""
        return Path(self.seed_labels) if self.seed_labels else data_dir / "emotions" / "redial_llm_labels.jsonl"
