"""The `recommender` section: the emotion-aware recommender (the `recommender` stage) and its variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import (
    STRICT,
    Resources,
    _check,
    _check_device,
)


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
    log_every: int = 50
    """A progress line (loss, learning rate, samples/s) every this many steps within an epoch, besides the one per
    epoch. Not part of the stage's key."""
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
        _check(self.log_every >= 1, f"recommender.log_every: must be >= 1, got {self.log_every}")
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
