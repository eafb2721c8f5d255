"""Typed configuration: dataclasses with documented fields, loaded from YAML recipes, overridable from the CLI.

One `Config` holds one section per concern (data, emotion, recommender, generator, tune, serve). A recipe
(`recipes/<name>.yaml`) is a complete, reproducible setting; the command line overrides single fields with
`--section.field value` (or `--section.field=value`). Precedence: CLI > environment (`ECR_DATA_DIR`,
`ECR_RUN_DIR`, `ECR_NODE_TYPES`) > recipe > defaults below.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent  # the checkout (tests, benchmarks); not needed once installed
RECIPES_DIR = PACKAGE_DIR / "recipes"
SAMPLE_DATA_DIR = PACKAGE_DIR / "data" / "sample"
# Every section rejects unknown fields; numbers given where a string is expected (a path "2024") are kept as text.
STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

KNOWLEDGE_FORMATS = ("triples", "entities")
"""Formats of the generation prompt's knowledge (generator.knowledge_format, Appendix B.2)."""
EMOTIONS = ("like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise")


class ConfigError(ValueError):
    """A recipe or command-line value is wrong; the message names the field."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_device(section: str, device: str, dtype: str) -> None:
    _check(device in ("auto", "cpu", "cuda"), f"{section}.device: expected auto|cpu|cuda, got {device!r}")
    _check(dtype in ("auto", "float32", "bfloat16"), f"{section}.dtype: expected auto|float32|bfloat16, got {dtype!r}")


@dataclass
class Resources:
    """What one piece of a stage's Ray work reserves, and how many run side by side: Ray Train workers, Ray Data
    actors or Ray tasks. Ray schedules a piece only where a node has `cpus` CPUs and `gpus` GPUs free, so size these
    to your node types (cluster/*.yaml): a request no node type can meet waits forever."""

    __pydantic_config__ = STRICT
    workers: int = 1
    """Train workers / actors / parallel tasks."""
    cpus: float = 1.0
    """CPUs each one reserves (also its torch thread count, rounded up: 1.5 leaves half a core to something small,
    such as a Tune trial's driver, and still runs 2 threads)."""
    gpus: float = 0.0
    """GPUs each one reserves; > 0 makes the work run on CUDA (`device: auto`)."""

    def __post_init__(self) -> None:
        _check(self.workers >= 1, f"workers: must be >= 1, got {self.workers}")
        _check(
            self.cpus >= 0 and self.gpus >= 0 and self.cpus + self.gpus > 0,
            f"cpus/gpus: must be >= 0 and not both 0, got cpus={self.cpus} gpus={self.gpus}",
        )

    def scaling_config(self):
        """Ray Train's ScalingConfig for these resources."""
        from ray.train import ScalingConfig

        per_worker = {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}
        return ScalingConfig(num_workers=self.workers, use_gpu=self.gpus > 0, resources_per_worker=per_worker)

    def options(self) -> dict[str, float]:
        """`ray.remote(...).options(**r.options())` for a task or an actor of these resources."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    @property
    def threads(self) -> int:
        return max(1, math.ceil(self.cpus))


@dataclass
class DataConfig:
    """Where the raw data is and how it becomes tables."""

    __pydantic_config__ = STRICT

    data_dir: str = "sample"
    """Raw data directory (layout of `../shared/data`). `sample` = the dataset shipped inside the package."""
    dataset: str = "redial"
    """`redial` or `inspired`."""
    valid_fraction: float = 0.1
    """Share of train conversations carved (deterministically, by id hash) into the validation split."""
    max_conversations: int = 0
    """Use at most this many conversations per split (0 = all); for quick runs."""
    link_entities: bool = True
    """Link free-text mentions (actors, genres, ...) to KG entities with the offline linker."""
    skip_invalid: bool = False
    """Skip malformed rows (and report them) instead of failing on the first one."""

    def __post_init__(self) -> None:
        _check(self.dataset in ("redial", "inspired"), f"data.dataset: expected redial|inspired, got {self.dataset!r}")
        _check(0.0 <= self.valid_fraction < 1.0, f"data.valid_fraction: must be in [0, 1), got {self.valid_fraction}")
        _check(self.max_conversations >= 0, "data.max_conversations: must be >= 0")

    def resolved_dir(self) -> Path:
        return SAMPLE_DATA_DIR if self.data_dir == "sample" else Path(self.data_dir).expanduser().resolve()


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


@dataclass
class RecommenderConfig:
    """Emotion-aware item recommender: the ECR emotion parts (Eq. 3-5, 7) on one of two backbones, `light` (a small
    trainable Transformer over per-turn sentence vectors, CPU-sized) or `unicrs` (UniCRS: frozen token encoder,
    semantic fusion, prefix tuning of a frozen causal LM)."""

    __pydantic_config__ = STRICT

    variant: str = "full"
    """Ablation switch: baseline | L | LS | LG | full (paper Table 3). L = local emotion reps, G = global
    emotion reps, S = feedback-aware sample reweighting; baseline = UniCRS-equivalent (no emotions, uniform)."""
    backbone: str = "light"
    """`light` (recommender/model.py: per-turn vectors of a frozen sentence encoder + a 1-layer Transformer; trains
    on 2 CPU cores in minutes) or `unicrs` (recommender/unicrs.py: the paper's backbone, UniCRS: the frozen
    `text_encoder`'s token states fused with the KG entities, a prompt turned into per-layer prefix key/values of the
    frozen `plm`, items scored by the LM's last hidden state; GPU-sized). The variants mean the same on both."""
    text_encoder: str = "minilm"
    """Frozen context encoder: `minilm` (embedded) or a path / hub id (the paper recipe uses RoBERTa). `light` reads
    one mean-pooled vector per turn, `unicrs` its token states."""
    plm: str = "smollm2"
    """backbone unicrs: the frozen causal LM the prompt is a prefix of, and whose last hidden state scores the items:
    `smollm2` (embedded SmolLM2-135M) or a path / hub id (UniCRS and the paper recipe: microsoft/DialoGPT-small)."""
    entity_dim: int = 128
    """Entity embedding width of the KG encoder (UniCRS: 384, half of DialoGPT-small's width; `unicrs` projects it to
    the PLM's width)."""
    emotion_dim: int = 48
    """Emotion label embedding size (paper: 48)."""
    device: str = "auto"
    """Where the text encoder, the scoring passes and serving compute (Ray Train follows the resources): auto (CUDA
    where the process sees a GPU, else CPU) | cpu | cuda."""
    dtype: str = "auto"
    """auto (bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16. Training on CUDA autocasts to bf16 unless
    float32; training on the CPU runs float32."""
    num_bases: int = 8
    """RGCN bases."""
    max_context_entities: int = 32
    """Most recent context entities kept per sample."""
    max_context_tokens: int = 200
    """`light`: token cap per context turn for the sentence encoder. `unicrs`: the context's most recent tokens the
    text encoder and the PLM each read (the whole dialogue so far, cut from the left; UniCRS: 200)."""
    max_context_turns: int = 8
    """`light`: most recent context turns fed to the prompt (each encoded once by the frozen encoder and cached)."""
    prompt_tokens: int = 10
    """Learned prompt (task) tokens (UniCRS: 10 for recommendation)."""
    fusion_layers: int = 1
    """`light`: Transformer layers fusing prompt tokens, entity reps and turn states."""
    dropout: float = 0.1
    """`light`: dropout of the fusion Transformer (UniCRS's prompt encoder has none)."""
    prefix_hidden: int = 0
    """`unicrs`: hidden width of the residual MLP that maps each prompt vector to the PLM's per-layer prefix key/values
    (0 = half the PLM width, as UniCRS)."""
    pretrain_epochs: int = 0
    """`unicrs`: epochs of UniCRS's prompt pre-training before recommendation training: the same objective with the
    response appended to the context, so the fusion learns to align text and entities (UniCRS: 5). A Ray Train run of
    its own, resumable; its best epoch (validation loss) initialises the recommendation run. 0 = none."""
    pretrain_lr: float = 5e-4
    """`unicrs`: learning rate of the prompt pre-training (UniCRS: 5e-4)."""
    copy_mentioned: bool = False
    """Score the items already mentioned in the dialogue with a learned pointer (copy) head, on either backbone: each
    context item gets a score from its state in the model (its KG representation, fused with the emotions of its latest
    mention in the emotion variants, and with the context), how many turns ago it was last mentioned and by whom; a
    sentinel beside the pointer scores decides how much probability goes to mentioned items against new ones, and the
    new items keep the backbone's scores (pointer-generator with a sentinel gate; trained end to end by the same loss).
    Off (the default) = the paper's Table 1 model, every item scored alike. A model with it is saved as
    `<variant>+copy`."""
    emotions_source: str = "file"
    """Entity emotions: `file` (run_dir/emotions/entity_emotions.parquet, the emotion classifier's labels of every user
    turn: the paper's, and what serving feeds the model), `seed` (built from the LLM seed labels in data_dir/emotions
    plus a probe: only when asked for by name; such a model is not served), `none` (only variant baseline)."""
    feedback_weights: dict[str, float] = field(default_factory=lambda: {"like": 2.0, "dislike": 1.0, "not_said": 0.5})
    """Per-sample loss weight by the user's feedback on the target item (paper: 2.0 / 1.0 / 0.5)."""
    epochs: int = 5
    select_by: str = "valid_loss"
    """The validation metric that picks the epoch kept: valid_loss or valid_ce (lowest), or a ranking metric
    valid_r@1/10/50, valid_rt@1/10/50, valid_auc, valid_auc_global (highest)."""
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    """Share of optimizer steps with linear warm-up."""
    max_train_samples: int = 0
    """Use at most this many training samples (0 = all); for quick runs."""
    auc_batch_size: int = 32
    """Evaluation batch over which ECR's AUC is computed (authors: 32)."""
    cache_dir: str = ""
    """Where cached context embeddings live (empty = run_dir/recommender/cache); share it between runs."""
    train_resources: Resources = field(default_factory=Resources)
    """Ray Train workers (the global batch is split over them); fractional CPUs are allowed (in a Tune sweep the
    trial's driver holds a little too)."""
    encode_resources: Resources = field(default_factory=Resources)
    """The Ray task that encodes the dialogue turns with the frozen text encoder, and the one that evaluates the
    trained model on valid/test (`workers` is not used)."""
    max_failures: int = 2
    """Ray Train FailureConfig: restarts from the latest checkpoint (a lost worker or node) before the run fails."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed config (empty = plain DDP); batch sizes are filled in from batch_size / num_workers."""

    def __post_init__(self) -> None:
        _check(
            self.variant in RECOMMENDER_VARIANTS,
            f"recommender.variant: expected baseline|L|LS|LG|full, got {self.variant!r}",
        )
        _check_device("recommender", self.device, self.dtype)
        missing = {"like", "dislike", "not_said"} - set(self.feedback_weights)
        _check(not missing, f"recommender.feedback_weights: missing {sorted(missing)}")
        _check(all(w >= 0 for w in self.feedback_weights.values()), "recommender.feedback_weights: must be >= 0")
        _check(
            self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0, "recommender.epochs/batch_size/lr must be > 0"
        )
        _check(
            self.select_by in SELECT_BY,
            f"recommender.select_by: expected one of {sorted(SELECT_BY)}, got {self.select_by!r}",
        )
        _check(self.entity_dim >= 8 and self.emotion_dim >= 1, "recommender.entity_dim >= 8, emotion_dim >= 1")
        _check(
            self.max_context_entities >= 1 and self.max_context_turns >= 1 and self.max_context_tokens >= 8,
            "recommender.max_context_entities/turns >= 1, max_context_tokens >= 8",
        )
        _check(
            self.emotions_source in ("file", "seed", "none"),
            f"recommender.emotions_source: expected file|seed|none, got {self.emotions_source!r}",
        )
        _check(
            self.emotions_source != "none" or self.variant == "baseline",
            f"recommender.emotions_source none: only variant baseline trains without emotions, got {self.variant!r}",
        )
        _check(
            0.0 <= self.dropout < 1.0 and 0.0 <= self.warmup_fraction < 1.0,
            "recommender.dropout/warmup_fraction: must be in [0, 1)",
        )
        _check(self.auc_batch_size >= 2, "recommender.auc_batch_size: must be >= 2")
        _check(
            self.backbone in RECOMMENDER_BACKBONES,
            f"recommender.backbone: expected light|unicrs, got {self.backbone!r}",
        )
        _check(
            self.pretrain_epochs >= 0 and self.pretrain_lr > 0 and self.prefix_hidden >= 0,
            "recommender.pretrain_epochs/prefix_hidden >= 0, pretrain_lr > 0",
        )
        _check(
            self.pretrain_epochs == 0 or self.backbone == "unicrs",
            f"recommender.pretrain_epochs: prompt pre-training is part of backbone unicrs, got {self.backbone!r}",
        )

    @property
    def name(self) -> str:
        """What the trained model is called (its folder under run_dir/recommender): the variant, `+copy` with the
        pointer head."""
        return self.variant + ("+copy" if self.copy_mentioned else "")

    @property
    def local_emotions(self) -> bool:
        return self.variant != "baseline"

    @property
    def global_emotions(self) -> bool:
        return self.variant in ("LG", "full")

    @property
    def reweight(self) -> bool:
        return self.variant in ("LS", "full")


RECOMMENDER_VARIANTS = ("baseline", "L", "LS", "LG", "full")
RECOMMENDER_BACKBONES = ("light", "unicrs")
SELECT_BY = {
    **dict.fromkeys(("valid_loss", "valid_ce"), "min"),
    **dict.fromkeys(
        ("valid_auc", "valid_auc_global", *(f"valid_{m}@{k}" for m in ("r", "rt") for k in (1, 10, 50))), "max"
    ),
}
"""recommender.select_by: each validation metric and whether its best is its lowest or its highest."""


@dataclass
class ChatTrainConfig:
    """How a chat-model stage fine-tunes (the generator and the conversation module share these fields): PEFT LoRA on
    a causal LM with transformers' `Trainer` inside Ray Train (`generator/train.py`). `batch_size` is the global batch
    of one optimizer step; each of the `train_resources.workers` ranks runs `micro_batch_size` examples per forward
    and accumulates gradients up to it. `ecr-ray plan` shows what these cost per GPU."""

    __pydantic_config__ = STRICT
    SECTION: ClassVar[str] = "generator"

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_length: int = 256
    """Prompt + target tokens per training example; the target is cut to fit."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    epochs: int = 1
    batch_size: int = 16
    """Global batch: examples per optimizer step over all workers (the paper's 16 for the generator)."""
    micro_batch_size: int = 0
    """Examples per worker per forward/backward; gradients accumulate over batch_size / (micro_batch_size × workers)
    of them. 0 = batch_size / workers (no accumulation). What sizes the activations on each GPU."""
    gradient_checkpointing: bool = False
    """Activation (gradient) checkpointing: keep only each decoder layer's input in the forward pass and recompute
    the layer in the backward pass: activations ~1/L of the whole for ~30% more compute."""
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    checkpoint_every: int = 50
    """Write a resumable checkpoint (adapter, optimizer, LR schedule, data position) every this many steps."""
    max_failures: int = 2
    """Ray Train FailureConfig: restarts from the latest checkpoint (a lost worker or node) before the run fails."""
    train_resources: Resources = field(default_factory=lambda: Resources(workers=1, cpus=2))
    """Ray Train workers fine-tuning the model (one GPU each on a GPU cluster)."""
    eval_resources: Resources = field(default_factory=lambda: Resources(workers=1, cpus=2))
    """The Ray task that builds the training examples (and, for the generator, the one that generates for
    `evaluate_generator` and the knowledge sweep, and the one that merges the adapter for vLLM: `ecr-ray merge`)."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed config handed to transformers' integration (TrainingArguments.deepspeed); batch sizes, gradient
    clipping and precision are filled in from the fields above. Empty = plain PyTorch / DDP. Under ZeRO-3 the base
    model is partitioned while it loads (`zero.Init`); otherwise each rank loads it straight onto its own GPU."""

    @property
    def micro_batch(self) -> int:
        """Examples per worker per forward pass."""
        return self.micro_batch_size or max(1, self.batch_size // self.train_resources.workers)

    @property
    def accumulation(self) -> int:
        """Micro-batches each worker accumulates per optimizer step."""
        return max(1, self.batch_size // (self.micro_batch * self.train_resources.workers))

    @property
    def zero_stage(self) -> int:
        """The ZeRO stage of `deepspeed` (0: no DeepSpeed, or ZeRO off)."""
        return int((self.deepspeed.get("zero_optimization") or {}).get("stage", 0)) if self.deepspeed else 0

    def bf16(self, device_type: str) -> bool:
        """bf16 weights and compute: on CUDA unless the section's dtype is float32, or wherever `deepspeed` asks."""
        return bool((self.deepspeed.get("bf16") or {}).get("enabled")) or (
            device_type == "cuda" and getattr(self, "dtype", "auto") != "float32"
        )

    def _check_training(self) -> None:
        n = self.SECTION
        _check(self.batch_size >= 1 and self.epochs >= 1 and self.lr > 0, f"{n}.batch_size/epochs/lr must be > 0")
        _check(self.max_steps >= 0 and self.checkpoint_every >= 1, f"{n}.max_steps >= 0, checkpoint_every >= 1")
        _check(self.micro_batch_size >= 0, f"{n}.micro_batch_size: must be >= 0, got {self.micro_batch_size}")
        _check(self.max_failures >= 0, f"{n}.max_failures: must be >= 0, got {self.max_failures}")
        _check(self.lora_r >= 1 and 0 <= self.lora_dropout < 1, f"{n}.lora_r >= 1 and lora_dropout in [0, 1)")
        workers = self.train_resources.workers
        _check(
            self.batch_size % (self.micro_batch * workers) == 0,
            f"{n}.batch_size ({self.batch_size}) must be a multiple of {n}.micro_batch_size ({self.micro_batch}) × "
            f"{n}.train_resources.workers ({workers}): it is the global batch of one optimizer step",
        )


@dataclass
class GeneratorConfig(ChatTrainConfig):
    """Emotion-aligned response generator (LoRA on a Llama-architecture chat model) and its review database."""

    __pydantic_config__ = STRICT

    # --- review database (Appendix A.2)
    reviews_file: str = "reviews/imdb_reviews_ecr.jsonl"
    """Reviews JSONL, relative to data.data_dir (or absolute)."""
    review_filter: str = "small"
    """Appendix A.2 variant: `small` (≥20 words, cut to 150, helpfulness ≥1) or `llama` (≥120 words, cut to 300,
    ≥4 first-person pronouns, helpfulness ≥5). Helpfulness applies only when the file has such a field."""
    min_entity_mentions: int = 2
    """A review entity joins its movie's knowledge when mentioned at least this often over the movie's reviews."""
    review_entity_filter: str = "authors"
    """Which linked review entities the generator sees (its training prompts and the movies' knowledge): `authors`
    (the authors' filter: 1-hop KG neighbours of the movie over starring / writer / productionCompany / director /
    musicComposer, or entities frequent over all reviews but not ubiquitous with names of some length, by the three
    fields below; then per movie those mentioned ≥ min_entity_mentions times) | `none` (every linked entity in the
    training prompts, min_entity_mentions alone for the movies' knowledge)."""
    review_entity_min_global: int = 20
    """`authors` filter: a non-neighbour entity needs at least this many mentions over all reviews."""
    review_entity_max_movies: int = 1970
    """`authors` filter: ... and to be mentioned in the reviews of at most this many movies (not ubiquitous)."""
    review_entity_min_name_chars: int = 6
    """`authors` filter: ... and a name (without its "(disambiguation)") of at least this many characters."""
    link_resources: Resources = field(default_factory=lambda: Resources(workers=2, cpus=1))
    """Ray Data actors linking review entities (`build_reviews`)."""
    # --- prompt (Eq. 8)
    base_model: str = "smollm2"
    """`smollm2` (embedded SmolLM2-135M-Instruct GGUF, converted once and cached) or a path / hub id."""
    method: str = "lora"
    """`lora` or `full` (full fine-tuning, for DialoGPT-style models)."""
    num_triples: int = 2
    """pn_t: KG triples in the prompt."""
    num_review_entities: int = 4
    """pn_e: review entities in the prompt."""
    knowledge_format: str = "triples"
    """`triples`: pn_t triple lines ("{movie}'s {relation} is {entity}") beside pn_e entities (Eq. 8) | `entities`:
    Appendix B.2's fourth setting, no triple lines, the tails of the same pn_t triples appended to the pn_e entities
    (pn_t + pn_e entities). Both training and inference prompts follow it."""
    # --- training targets (section 4.3.1 trains on the review from its start)
    review_target: str = "opening"
    """Which part of each review is the training target: `opening` (the review from its first sentence, cut to
    `max_length`: the paper) | `knowledge` (from the sentence before the first one that names one of the review's
    entities: with a short `max_length` the target then still shows the knowledge its prompt names)."""
    drop_viewing_claims: bool = False
    """Remove from the targets the sentences about the reviewer's own viewing ("I just saw this last night", "I was
    8 years old when I first saw it"), which the model would otherwise repeat as its own claims."""
    max_same_opening: int = 0
    """At most this many targets may open with the same four words (later ones start a sentence further on);
    0 = no limit."""
    # --- fine-tuning: the fields of ChatTrainConfig
    # --- generation
    max_new_tokens: int = 64
    do_sample: bool = False
    """Greedy (false) or sampling with temperature/top_p (true)."""
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    knowledge_bonus: float = 0.0
    """Logit bonus for the tokens that spell (or continue spelling) one of the prompt's knowledge names (review
    entities, triple tails) not yet written in the reply; 0 = plain decoding."""
    reply_guard: bool = True
    """Check every sentence of the reply (`generator/guard.py`): one naming a KG entity (or another movie) that is
    not the item, a 1-hop KG neighbour of it or one of its review entities, or claiming the speaker's own viewing
    ("I just saw it last night"), is dropped, and the answer says so (`guard`). Serving and evaluation alike."""
    guard_retries: int = 1
    """When the guard drops every sentence: generate again (sampling, another seed) up to this many times before
    answering with the recommendation sentence alone."""
    engine: str = "transformers"
    """Serving engine: `transformers` (each Generator replica runs the model; the CPU recipes) or `vllm` (Ray Serve
    LLM: the model on vLLM, continuous batching and a paged KV cache, in a GPU deployment of its own; the Generator
    replica builds prompts and calls it; `pip install "ecr-ray[gpu]"`). With vllm a LoRA adapter is served merged
    into the base model: the merge step (`ecr-ray merge`, in the pipeline after the generator) writes
    `<run_dir>/generator/merged` once; switching engines never retrains."""
    vllm: dict[str, Any] = field(default_factory=dict)
    """With engine vllm: extra Ray Serve LLM `LLMConfig` fields, e.g. `engine_kwargs: {tensor_parallel_size: 2,
    max_model_len: 4096}`, `accelerator_type: A10G`, `deployment_config: {autoscaling_config: {...}}`,
    `placement_group_config: {bundles: [...]}` (the engine's placement group; default one GPU per tensor/pipeline
    rank; CPU-only bundles make it a CPU deployment, as the tests run it)."""
    device: str = "auto"
    """Where evaluation and serving generate (training follows its resources): auto | cpu | cuda."""
    dtype: str = "auto"
    """auto (bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16, for generation; training on CUDA loads the
    base model in bf16 (and autocasts) unless float32."""
    compile: bool = False
    """torch.compile the decode step (frozen weights, static KV cache of `max_cache_len`): 1.5× tokens/s at batch 1
    on CPU (docs/generator.md), paid for with ~40-50 s of compiling per batch size when the model loads. Tested on
    Llama-architecture models (SmolLM2)."""
    max_cache_len: int = 512
    """With `compile`: KV-cache slots per sequence. Longer prompt + max_new_tokens decode uncompiled."""
    compile_batch_sizes: list[int] = field(default_factory=lambda: [1])
    """With `compile`: batch sizes compiled at load (~50 s each); other sizes decode eagerly. On CPU compiling pays
    at batch 1 only (1.5×); at batch 8 eager decoding is faster (docs/generator.md)."""
    eval_samples: int = 200
    """ReDial test contexts (with their target item) in `evaluate_generator`."""
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        _check(self.method in ("lora", "full"), f"generator.method: expected lora|full, got {self.method!r}")
        _check(
            self.review_filter in ("small", "llama"),
            f"generator.review_filter: expected small|llama, got {self.review_filter!r}",
        )
        _check(self.min_entity_mentions >= 1, "generator.min_entity_mentions: must be >= 1")
        _check(
            self.review_entity_filter in ("authors", "none"),
            f"generator.review_entity_filter: expected authors|none, got {self.review_entity_filter!r}",
        )
        _check(
            self.review_entity_min_global >= 0
            and self.review_entity_max_movies >= 1
            and self.review_entity_min_name_chars >= 0,
            "generator.review_entity_min_global >= 0, review_entity_max_movies >= 1, review_entity_min_name_chars >= 0",
        )
        _check(
            self.knowledge_format in KNOWLEDGE_FORMATS,
            f"generator.knowledge_format: expected triples|entities, got {self.knowledge_format!r}",
        )
        _check(
            self.num_triples >= 0 and self.num_review_entities >= 0, "generator.num_triples/num_review_entities >= 0"
        )
        _check(
            self.review_target in ("opening", "knowledge"),
            f"generator.review_target: expected opening|knowledge, got {self.review_target!r}",
        )
        _check(self.max_same_opening >= 0, "generator.max_same_opening: must be >= 0")
        _check(self.knowledge_bonus >= 0 and self.guard_retries >= 0, "generator.knowledge_bonus/guard_retries >= 0")
        _check(self.max_length >= 16, "generator.max_length: must be >= 16")
        self._check_training()
        _check(
            self.max_new_tokens >= 1 and self.eval_samples >= 1 and self.eval_batch_size >= 1,
            "generator.max_new_tokens/eval_samples/eval_batch_size must be >= 1",
        )
        _check(self.temperature > 0 and 0 < self.top_p <= 1, "generator.temperature > 0 and top_p in (0, 1]")
        _check_device("generator", self.device, self.dtype)
        _check(
            self.engine in ("transformers", "vllm"),
            f"generator.engine: expected transformers|vllm, got {self.engine!r}",
        )
        known = ("accelerator_type", "deployment_config", "engine_kwargs", "placement_group_config", "runtime_env")
        bad = sorted(set(self.vllm) - set(known))
        _check(not bad, f"generator.vllm: unknown field(s) {bad}; known: {', '.join(known)}")
        _check(
            self.max_cache_len > self.max_new_tokens,
            f"generator.max_cache_len ({self.max_cache_len}) must exceed max_new_tokens ({self.max_new_tokens})",
        )
        _check(
            bool(self.compile_batch_sizes) and all(b >= 1 for b in self.compile_batch_sizes),
            f"generator.compile_batch_sizes: expected sizes >= 1, got {self.compile_batch_sizes}",
        )

    def reviews_path(self, data_dir: Path) -> Path:
        p = Path(self.reviews_file).expanduser()
        return p if p.is_absolute() else data_dir / p


@dataclass
class ConversationConfig(ChatTrainConfig):
    """The conversation module (UniCRS's conversation task, section 4.3.2's u_r): the recommender's next turn written
    from the dialogue with `<movie>` where it names a film, the slots then filled with the recommender's items. A
    LoRA adapter of a chat model, trained on ReDial's recommender turns that name a movie (titles masked). Serving
    and evaluation use it when `<run_dir>/conversation/adapter` exists; otherwise Serve's templates, and the answer
    says which (`response.recommendation_source`)."""

    __pydantic_config__ = STRICT
    SECTION: ClassVar[str] = "conversation"

    base_model: str = "smollm2"
    """`smollm2` (embedded) or a path / hub id of a causal LM: a chat model, or one without a chat template
    (DialoGPT, UniCRS's conversation model: the prompt then takes the plain instruction layout of `render_prompt`)."""
    context_turns: int = 4
    """Last dialogue turns in the prompt."""
    method: str = "lora"
    """`lora` (only LoRA is supported for this module)."""
    # --- fine-tuning: the fields of ChatTrainConfig, with these defaults
    max_length: int = 192
    """Prompt + response tokens per training example (the prompt keeps its end when cut)."""
    batch_size: int = 8
    """Global batch: examples per optimizer step over all workers."""
    lr: float = 2e-4
    max_new_tokens: int = 40
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        _check(self.method == "lora", f"conversation.method: only lora is supported, got {self.method!r}")
        _check(self.context_turns >= 1, "conversation.context_turns: must be >= 1")
        _check(self.max_length >= 32, "conversation.max_length: must be >= 32")
        self._check_training()
        _check(self.max_new_tokens >= 1, "conversation.max_new_tokens: must be >= 1")
        _check(self.temperature > 0 and 0 < self.top_p <= 1, "conversation.temperature > 0 and top_p in (0, 1]")
        _check_device("conversation", self.device, self.dtype)


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


@dataclass
class ServeConfig:
    """Ray Serve application (`serve/app.py`): limits on client input, sessions, and per-deployment options."""

    __pydantic_config__ = STRICT

    host: str = "127.0.0.1"
    """Bind address of the HTTP proxy (`ecr-ray serve`); keep 127.0.0.1 unless behind an authenticating proxy."""
    port: int = 8000
    proxy_location: str = "HeadOnly"
    """`HeadOnly`: one HTTP proxy, on the head (a laptop; several nodes on one machine) | `EveryNode`: a proxy on every
    node, behind your load balancer (KubeRay's Serve service)."""
    check_resources: bool = True
    """Before deploying, require the deployments at their largest scale to fit the cluster's resources, and fail
    naming them and the shortfall instead of waiting forever. Turn off on clusters that add nodes on demand."""
    model_name: str = "ecr"
    """Model id reported by GET /v1/models and expected in chat-completion requests."""
    max_turns: int = 50
    """Most turns in one request's dialogue (and kept in one session: older turns are dropped first)."""
    max_chars: int = 4000
    """Most characters in one turn's text."""
    max_body_bytes: int = 262144
    """Larger request bodies are refused (413) before they are parsed."""
    default_top_k: int = 5
    max_top_k: int = 50
    max_new_tokens: int = 64
    """Cap on generated tokens per reply (a request may ask for fewer)."""
    max_sessions: int = 1000
    """Sessions kept in memory (least recently used evicted first)."""
    max_sessions_per_client: int = 100
    """Most sessions one client (a bearer token; without auth an IP address) holds; its least recently used one
    makes room for a new one. A backend that talks for many users through one token needs it raised."""
    session_ttl_s: float = 3600.0
    """A session idle for longer than this is forgotten."""
    api_token_env: str = "ECR_API_TOKEN"
    """Environment variable holding the bearer token(s); unset or empty = no authentication. Several tokens,
    comma-separated, make several clients."""
    body_timeout_s: float = 10.0
    """A request body must arrive in full within this many seconds of the service starting to read it (→ 408)."""
    header_timeout_s: float = 10.0
    """The request line and headers must arrive within this many seconds (→ 408, connection closed). Enforced in
    Serve's HTTP proxy (serve/guard.py), which reads it from the Ray processes' environment."""
    max_header_bytes: int = 16384
    """Most bytes of request line + headers (→ 431, connection closed); in the proxy like header_timeout_s."""
    llm_max_messages: int = 32
    """/llm: most messages in one chat-completion request."""
    llm_max_chars: int = 16000
    """/llm: most characters in one message (the labelling prompt with its history stays well below)."""
    llm_max_tokens: int = 256
    """/llm: cap on max_tokens / max_completion_tokens (a request asking for more is refused, 400)."""
    health_timeout_s: float = 2.0
    """/healthz: how long each model deployment has to answer before the service reports itself not ready (503)."""
    request_timeout_s: float = 120.0
    """Deadline for one request's calls to the model deployments (→ 504 when exceeded)."""
    max_batch_size: int = 16
    """`@serve.batch` size for emotion classification (texts of concurrent requests share one encoder pass)."""
    batch_wait_timeout_s: float = 0.0
    """How long a batch waits for batch-mates. 0 = opportunistic: requests that queue while the model runs form the
    next batch, and a lone request never waits (measured: 5 ms + 2 ms of waits were a third of a cached request)."""
    recommender_batch_size: int = 8
    """`@serve.batch` size for recommendation (concurrent dialogues scored in one forward pass)."""
    recommender_batch_wait_s: float = 0.0
    """Like batch_wait_timeout_s, for the Recommender's batches."""
    text_cache_size: int = 10000
    """Texts whose emotion probabilities / turn embeddings each replica keeps (LRU): clients re-send the history with
    every request, and only turns a replica has not seen go through the encoders."""
    encoder_dtype: str = "auto"
    """dtype of the serving text encoders (emotion classifier, recommender context encoder): float32 | bfloat16 |
    auto (= bfloat16 on CPUs with native bf16 matmul, ~1.6x faster MiniLM; float32 elsewhere)."""
    generator_batch_size: int = 4
    """`@serve.batch` size for reply generation (concurrent replies decoded together, left-padded)."""
    generator_batch_wait_s: float = 0.02
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Ray Serve options per deployment (num_replicas or autoscaling_config, ray_actor_options, max_ongoing_requests,
    ...); a recipe's entry replaces the default entry of that deployment."""

    DEPLOYMENTS = ("ECRIngress", "EmotionDetector", "Recommender", "Generator")
    """The deployments of the ECR application (with `generator.engine: vllm`, `VLLMGenerator` in place of Generator,
    and Ray Serve LLM's own, sized by `generator.vllm`); `ChatModel` is the base-model endpoint of the `llm`
    application."""
    ALL_DEPLOYMENTS = (*DEPLOYMENTS, "VLLMGenerator", "ChatModel")
    APPS = ("ecr", "llm")
    """The Serve applications: the ECR service at `/` and the base-model endpoint at `/llm`."""
    OPTIONS = (
        "num_replicas",
        "autoscaling_config",
        "ray_actor_options",
        "max_ongoing_requests",
        "max_queued_requests",
        "health_check_period_s",
        "health_check_timeout_s",
        "graceful_shutdown_timeout_s",
        "graceful_shutdown_wait_loop_s",
        "max_replicas_per_node",
    )

    DEFAULT_DEPLOYMENTS = {  # sized for a 2-core laptop; GPU recipes give Generator num_gpus
        # max_ongoing_requests above Serve's default 5: a request over the limit waits in the caller's router with
        # back-off (cached requests from 32 clients: 8.4 req/s before, 83 after), and batching needs requests in.
        "ECRIngress": {"num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.1}},
        "EmotionDetector": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.25}},
        "Recommender": {
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16},
            "max_ongoing_requests": 64,
            "ray_actor_options": {"num_cpus": 0.25},
        },
        "Generator": {"num_replicas": 1, "max_ongoing_requests": 32, "ray_actor_options": {"num_cpus": 0.5}},
        # engine vllm: prompts and the reply guard only (the model is in Ray Serve LLM's deployment); no GPU
        "VLLMGenerator": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.5}},
        # The /llm app's base model: 0.35 CPU keeps both applications within 2 CPUs at their largest scale
        # (0.1 + 0.25 + 2 × 0.25 + 0.5 + 0.35 = 1.7); it computes on all the cores it finds anyway.
        "ChatModel": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.35}},
    }

    def __post_init__(self) -> None:
        self.deployments = {**copy.deepcopy(self.DEFAULT_DEPLOYMENTS), **self.deployments}
        _check(0 < self.port < 65536, f"serve.port: out of range: {self.port}")
        _check(bool(self.model_name), "serve.model_name: must not be empty")
        for name in (
            "max_turns",
            "max_chars",
            "max_body_bytes",
            "max_top_k",
            "max_new_tokens",
            "max_sessions",
            "max_sessions_per_client",
            "max_header_bytes",
            "llm_max_messages",
            "llm_max_chars",
            "llm_max_tokens",
            "max_batch_size",
            "generator_batch_size",
            "recommender_batch_size",
        ):
            _check(getattr(self, name) >= 1, f"serve.{name}: must be >= 1, got {getattr(self, name)}")
        _check(
            1 <= self.default_top_k <= self.max_top_k,
            f"serve.default_top_k: must be in [1, max_top_k={self.max_top_k}], got {self.default_top_k}",
        )
        for name in ("session_ttl_s", "request_timeout_s", "body_timeout_s", "header_timeout_s", "health_timeout_s"):
            _check(getattr(self, name) > 0, f"serve.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("batch_wait_timeout_s", "generator_batch_wait_s", "recommender_batch_wait_s"):
            _check(getattr(self, name) >= 0, f"serve.{name}: must be >= 0, got {getattr(self, name)}")
        _check(
            self.encoder_dtype in ("float32", "bfloat16", "auto"),
            f"serve.encoder_dtype: expected float32|bfloat16|auto, got {self.encoder_dtype!r}",
        )
        _check(
            self.proxy_location in ("HeadOnly", "EveryNode"),
            f"serve.proxy_location: expected HeadOnly|EveryNode, got {self.proxy_location!r}",
        )
        _check(self.text_cache_size >= 0, f"serve.text_cache_size: must be >= 0, got {self.text_cache_size}")
        for dep, opts in self.deployments.items():
            _check(
                dep in self.ALL_DEPLOYMENTS,
                f"serve.deployments.{dep}: unknown deployment; known: {self.ALL_DEPLOYMENTS}",
            )
            _check(isinstance(opts, dict), f"serve.deployments.{dep}: expected a mapping of Serve options")
            bad = sorted(set(opts) - set(self.OPTIONS))
            _check(not bad, f"serve.deployments.{dep}: unknown option(s) {bad}; known: {self.OPTIONS}")
            _check(
                not ("num_replicas" in opts and "autoscaling_config" in opts),
                f"serve.deployments.{dep}: set num_replicas or autoscaling_config, not both",
            )

    def app_deployments(self, app: str, engine: str) -> list[str]:
        """The deployments of application `app` whose options `deployments` gives, with generator engine `engine`:
        with vllm, VLLMGenerator in place of Generator and no ChatModel (Ray Serve LLM's own deployments are sized
        by generator.vllm)."""
        if app == "llm":
            return [] if engine == "vllm" else ["ChatModel"]
        return ["ECRIngress", "EmotionDetector", "Recommender", "VLLMGenerator" if engine == "vllm" else "Generator"]

    def deployment_options(self, name: str) -> dict[str, Any]:
        """Serve options for one deployment (a recipe's entry replaces the default one wholesale)."""
        return copy.deepcopy(self.deployments.get(name, {}))


@dataclass
class Config:
    """A whole ecr-ray setting: one recipe."""

    __pydantic_config__ = STRICT

    recipe: str = "demo"
    """Name of the recipe this config came from."""
    run_dir: str = "runs/demo"
    """Where every stage writes its artifacts (local path or shared storage on a cluster)."""
    seed: int = 42
    offline: bool = False
    """Load hub models only from the Hugging Face cache (HF_HOME), never downloading at run time; `ecr-ray
    fetch_models` fills it. HF_HUB_OFFLINE=1 does the same."""
    force_cpu: bool = False
    """Compute on the CPU everywhere, even in Ray work that reserves GPUs: every section's `device` becomes `cpu`
    and Ray Train workers holding a GPU train on the CPU over gloo. The resource requests stay as written, so a GPU
    recipe's shape (which node types the autoscaler launches, where each piece runs) can be rehearsed on nodes whose
    GPUs are logical only (docs/cluster.md, "Autoscaling, rehearsed"). Not for real GPUs: they sit idle."""
    node_types: str = ""
    """The cluster config whose node types every job's Ray work must fit: a Ray cluster launcher YAML
    (`available_node_types`, e.g. cluster/aws.yaml) or a KubeRay RayCluster / RayJob / RayService YAML
    (`workerGroupSpecs`). Each job checks its resource requests against them before it starts work and fails at once,
    naming the stage, the request and the node types, when none can hold a piece (instead of waiting forever for an
    autoscaler that has no such node). Empty: `~/ray_bootstrap_config.yaml` where it exists (the head of a `ray up`
    cluster, where job drivers run), else the nodes of a Ray instance the job started itself; on another cluster the
    requests are not checked. Environment: ECR_NODE_TYPES."""
    data: DataConfig = field(default_factory=DataConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    DEVICE_SECTIONS = ("emotion", "recommender", "generator", "conversation")
    """The sections with a `device` (and `dtype`)."""

    def __post_init__(self) -> None:
        if not self.force_cpu:
            return
        for name in self.DEVICE_SECTIONS:
            section = getattr(self, name)
            _check(section.device != "cuda", f"{name}.device: cuda contradicts force_cpu: true")
            section.device = "cpu"
        _check(
            self.generator.engine != "vllm", "generator.engine: vllm needs real GPUs, which force_cpu: true leaves idle"
        )

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir).expanduser().resolve()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_absolute_paths(self) -> Config:
        """A copy whose run and data directories no longer depend on the working directory (Ray tasks, Tune trials
        and Serve replicas run elsewhere)."""
        cfg = copy.deepcopy(self)
        cfg.run_dir = str(self.run_path)
        if self.data.data_dir != "sample":
            cfg.data.data_dir = str(self.data.resolved_dir())
        return cfg

    def section_hash(self, *sections: str) -> str:
        """Content hash of the named sections (what a stage's output depends on)."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading

_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "dataclass": "a mapping",
}


def _build(raw: dict[str, Any]) -> Config:
    """Validate a raw dict (recipe + environment + overrides) into a Config; the first problem becomes one
    ConfigError naming the dotted field, e.g. `recommender.epochs: expected an integer, got 'many'`."""
    try:
        return TypeAdapter(Config).validate_python(raw)
    except ValidationError as e:
        raise _config_error(e, Config) from None


def _config_error(e: ValidationError, root: type) -> ConfigError:
    errors = e.errors(include_url=False)
    unknown = [err for err in errors if err["type"] in ("unexpected_keyword_argument", "extra_forbidden")]
    if unknown:  # all unknown fields of the first section that has any, with the fields it knows
        parent = unknown[0]["loc"][:-1]
        names = sorted(str(err["loc"][-1]) for err in unknown if err["loc"][:-1] == parent)
        known = sorted(f.name for f in dataclasses.fields(_section_type(root, parent)))
        return ConfigError(f"{_dotted(parent) or 'config'}: unknown field(s) {names}; known: {known}")
    err = errors[0]
    where = _dotted(err["loc"])
    if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), ConfigError):
        msg = str(err["ctx"]["error"])  # a __post_init__ check: its message names the field already, or a subfield
        return ConfigError(msg if not where or msg.startswith(where) else f"{where}.{msg}")
    kind = err["type"].split("_")[0]
    expected = _EXPECTED.get(kind)
    if expected:
        return ConfigError(f"{where}: expected {expected}, got {err.get('input')!r}")
    return ConfigError(f"{where}: {err['msg']}")


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _section_type(root: type, loc: tuple) -> type:
    """The dataclass at a field path below `root` (for listing its known fields)."""
    tp: Any = root
    for name in loc:
        tp = {f.name: f.type for f in dataclasses.fields(tp)}[name]
        tp = globals()[tp] if isinstance(tp, str) else tp
    return tp


def recipe_path(recipe: str) -> Path:
    p = Path(recipe)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = RECIPES_DIR / f"{recipe}.yaml"
    if not p.exists():
        known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml"))
        raise ConfigError(f"recipe {recipe!r} not found (looked for {p}); known recipes: {known}")
    return p


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise ConfigError(f"--{dotted}: {k} is not a section")
    d[keys[-1]] = value


def load_config(recipe: str = "demo", overrides: dict[str, Any] | None = None) -> Config:
    """Recipe YAML (+ `extends:` parent) → environment → dotted overrides → validated `Config`."""
    path = recipe_path(recipe)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = raw.pop("extends", None)
    if parent:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends: expected a recipe name or YAML path, got {parent!r}")
        try:
            base = yaml.safe_load(recipe_path(parent).read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: extends {parent!r}: invalid YAML: {e}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"{path}: extends {parent!r}: top level must be a mapping")
        base.pop("extends", None)
        raw = _deep_merge(base, raw)
    raw.setdefault("recipe", path.stem)
    if os.environ.get("ECR_DATA_DIR"):
        _set_dotted(raw, "data.data_dir", os.environ["ECR_DATA_DIR"])
    if os.environ.get("ECR_RUN_DIR"):
        raw["run_dir"] = os.environ["ECR_RUN_DIR"]
    if os.environ.get("ECR_NODE_TYPES"):
        raw["node_types"] = os.environ["ECR_NODE_TYPES"]
    for k, v in (overrides or {}).items():
        _set_dotted(raw, k, v)
    return _build(raw)


def section_from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    """One config section (e.g. RecommenderConfig) from a saved dict, validated; errors name `where`."""
    try:
        return TypeAdapter(cls).validate_python(d)
    except ValidationError as e:
        raise ConfigError(f"{where}: {_config_error(e, cls)}") from None


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild (and re-validate) a Config from `Config.to_dict()` output, e.g. inside a Ray task."""
    return _build(d)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="demo", help="recipe name in recipes/ or a YAML path (default: demo)")
    parser.add_argument("--data-dir", help="raw data directory (overrides recipe and ECR_DATA_DIR)")
    parser.add_argument("--run-dir", help="run directory for all artifacts (overrides recipe and ECR_RUN_DIR)")
    parser.add_argument("--skip-invalid", action="store_true", help="skip and report malformed input rows")


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """`--section.field value` / `--section.field=value` pairs → {"section.field": parsed YAML value}."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"unexpected argument {tok!r}; overrides look like --section.field value")
        key = tok[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ConfigError(f"--{key}: missing value")
            text = extra[i + 1]
            i += 2
        key = key.replace("-", "_")
        try:
            out[key] = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            out[key] = text
    return out


def config_from_args(args: argparse.Namespace, extra: list[str]) -> Config:
    overrides = parse_overrides(extra)
    if getattr(args, "data_dir", None):
        overrides["data.data_dir"] = args.data_dir
    if getattr(args, "run_dir", None):
        overrides["run_dir"] = args.run_dir
    if getattr(args, "skip_invalid", False):
        overrides["data.skip_invalid"] = True
    return load_config(args.recipe, overrides)
