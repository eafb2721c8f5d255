"""The two chat-model sections, `generator` and `conversation`: their fine-tuning fields (LoRA, batches, DeepSpeed)
are one dataclass, `ChatTrainConfig`, which both extend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .base import (
    KNOWLEDGE_FORMATS,
    STRICT,
    Resources,
    _check,
    _check_device,
)


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
