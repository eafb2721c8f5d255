"""The memory plan of a recipe: what every GPU stage needs on each of its GPUs, next to the GPU memory of the node
types it can land on (`cluster/*.yaml`, `cluster/kuberay/*.yaml`), with >= 15% headroom.

    ecr-ray plan --recipe paper            # the table; exit 2, naming the recipe field, when a stage does not fit

Each model is built from its real config on the meta device (nothing allocated, nothing downloaded): the hub models
the shipped recipes name have their config.json in `ecr_ray/model_configs/`; other models are read from a local path
or the Hugging Face cache. Per GPU, by kind of stage (bytes; P = parameters, T = trainable parameters, W = workers,
t = tokens of one micro-batch):

    LoRA / full fine-tuning of a causal LM (generator, conversation module):
        weights             2P bf16 (fp32: 4P); ZeRO-3: 2P/W + the gathered layers in flight
        trainable states    LoRA under autocast: fp32 weight, gradient, AdamW m and v + the bf16 copy = 18T;
                            DeepSpeed bf16: bf16 weight and gradient + fp32 master, m, v and gradient partition
                            (ZeRO-1/2: /W) = 4T + 16T/W
        activations         `decoder_activations`: with gradient checkpointing each layer's input + one layer
                            recomputed in the backward pass; without, every layer's saved tensors; the loss head
    full fine-tuning of an encoder (emotion classifier), UniCRS (recommender): weights, 16 bytes per trainable
        parameter (fp32 weight, gradient, m, v) and 2 more (autocast copy), activations by Korthikanti et al. (2022),
        34·h + 5·a·s bytes per token and layer (16-bit activations, attention scores kept)
    inference (evaluation, Serve replicas): weights + KV cache (2 · layers · kv heads · head dim · 2 bytes per token)
        of the whole batch at prompt + new tokens + one layer's prefill tensors; vLLM: weights + KV cache of
        `max_num_seqs` sequences of `max_model_len`, inside `gpu_memory_utilization` of the GPU

The figures are what PyTorch allocates (`torch.cuda.max_memory_allocated`): the CUDA context, NCCL's buffers and the
allocator's fragmentation are what the 15% headroom is for. `benchmarks/gpu_check.py` puts the generator's measured
peak next to this plan's figure; `tests/test_plan.py` checks the activation formula against the measured peak of the
same code on the CPU.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import PACKAGE_DIR, PROJECT_ROOT, ChatTrainConfig, Config, ConfigError
from .generator.model import with_lora
from .hub import EMBEDDED_ENCODERS, resolve
from .recommender.unicrs import UnicrsRecommender

GIB = 2**30
HEADROOM = 0.15
MODEL_CONFIGS = PACKAGE_DIR / "model_configs"
EMBEDDED_CONFIGS = {"smollm2": MODEL_CONFIGS / "smollm2"}

# GPU memory as nvidia-smi reports it (MiB), by the GPU of a node type.
GPU_MIB = {
    "T4": 15360,
    "V100": 16384,
    "A10G": 23028,
    "L4": 23034,
    "A100-40GB": 40960,
    "A100-80GB": 81920,
    "H100": 81559,
    "H200": 143771,
}
# Cloud machine families → their GPU (the count comes from the node type's resources).
INSTANCE_GPUS = {
    "g4dn.": "T4",
    "p3.": "V100",
    "g5.": "A10G",
    "g6.": "L4",
    "p4d.": "A100-40GB",
    "p4de.": "A100-80GB",
    "p5.": "H100",
    "p5e.": "H200",
    "g2-standard-": "L4",
    "a2-highgpu-": "A100-40GB",
    "a2-ultragpu-": "A100-80GB",
    "a3-highgpu-": "H100",
}
FIRST_LAYER = re.compile(r"\.(?:layers|h)\.0\.")  # modules of a causal LM's first decoder layer (Llama, GPT-2)
KUBERAY_GPU_LABEL = "ecr-ray/gpu"  # pod-template label of a KubeRay GPU group: the GPU of its node pool


# ----------------------------------------------------------------------------- node types


@dataclass(frozen=True)
class NodeType:
    source: str
    """The config file (and, for KubeRay, the resource kind) it comes from."""
    name: str
    cpus: float
    gpus: float
    gpu: str = ""

    @property
    def gpu_bytes(self) -> int:
        return GPU_MIB[self.gpu] * 2**20 if self.gpu else 0


def cluster_dir() -> Path | None:
    """The folder of the cluster configs: `ECR_CLUSTER_DIR`, else the checkout's `cluster/` (None when neither)."""
    d = Path(os.environ.get("ECR_CLUSTER_DIR") or PROJECT_ROOT / "cluster")
    return d if d.is_dir() else None


def node_types(folder: Path) -> list[NodeType]:
    """The GPU node types of the launcher configs (`*.yaml`: available_node_types) and of the KubeRay configs
    (`kuberay/*.yaml`: worker groups) under `folder`."""
    out: list[NodeType] = []
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("kuberay/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                out += _launcher_nodes(path.relative_to(folder), doc) + _kuberay_nodes(path.relative_to(folder), doc)
    return [n for n in out if n.gpus > 0]


def _launcher_nodes(source: Path, doc: dict) -> list[NodeType]:
    out = []
    for name, t in (doc.get("available_node_types") or {}).items():
        res, nc = t.get("resources") or {}, t.get("node_config") or {}
        instance = str(nc.get("InstanceType") or nc.get("machineType") or "")
        gpu = next((g for prefix, g in INSTANCE_GPUS.items() if instance.startswith(prefix)), "")
        if res.get("GPU") and not gpu:
            raise ConfigError(f"{source}: node type {name}: unknown GPU of instance {instance!r} (plan.INSTANCE_GPUS)")
        out.append(NodeType(str(source), name, float(res.get("CPU", 0)), float(res.get("GPU", 0)), gpu))
    return out


def _kuberay_nodes(source: Path, doc: dict) -> list[NodeType]:
    spec = doc.get("spec") or {}
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    out = []
    for group in cluster.get("workerGroupSpecs") or []:
        template = group.get("template") or {}
        limits = ((template.get("spec") or {}).get("containers") or [{}])[0].get("resources", {}).get("limits", {})
        gpus = float(limits.get("nvidia.com/gpu", 0))
        gpu = ((template.get("metadata") or {}).get("labels") or {}).get(KUBERAY_GPU_LABEL, "")
        if gpus and gpu not in GPU_MIB:
            raise ConfigError(
                f"{source}: worker group {group.get('groupName')}: label the pod template with "
                f"{KUBERAY_GPU_LABEL}: <GPU> (one of {sorted(GPU_MIB)}), got {gpu!r}"
            )
        cpus = float(str(limits.get("cpu", 0)).rstrip("m")) / (1000 if str(limits.get("cpu", "")).endswith("m") else 1)
        out.append(NodeType(f"{source} ({doc.get('kind')})", str(group.get("groupName")), cpus, gpus, gpu))
    return out


# ----------------------------------------------------------------------------- models on the meta device


def model_config(name: str, offline: bool = True):
    """The transformers config of a model the recipe names: shipped (hub ids of the recipes, the embedded SmolLM2),
    the embedded MiniLM's, a local path's, or one in the Hugging Face cache. Never downloads."""
    from transformers import AutoConfig

    shipped = EMBEDDED_CONFIGS.get(name) or MODEL_CONFIGS / name
    if (shipped / "config.json").exists():
        return AutoConfig.from_pretrained(str(shipped))
    if name in EMBEDDED_ENCODERS or Path(name).expanduser().exists():
        return AutoConfig.from_pretrained(resolve(name))
    try:
        return AutoConfig.from_pretrained(resolve(name, offline=True))
    except OSError:
        raise ConfigError(
            f"model {name!r}: no config.json shipped in {MODEL_CONFIGS} nor in the Hugging Face cache; "
            "fetch it first (`ecr-ray fetch_models`) or give a local path"
        ) from None


@dataclass
class Shape:
    """What the plan needs of a transformer: sizes from its config, parameter counts from the meta device."""

    kind: str
    """`llama` (RMSNorm, SwiGLU: Llama, Mistral, Qwen2, SmolLM2), `gpt2` (LayerNorm, GELU, dropout) or `encoder`."""
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    params: int
    trainable: int = 0
    """LoRA parameters (when a LoRA config was applied)."""
    lora_inputs: list[int] = field(default_factory=list)
    """Input width of each LoRA-adapted module of one layer."""
    dropout: float = 0.0
    """Residual dropout of the architecture (GPT-2's resid_pdrop)."""

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 key + value of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


def model_shape(name: str, lora: ChatTrainConfig | None = None, causal: bool = True) -> Shape:
    """The shape of the model a recipe names (`shape_of` its config)."""
    return shape_of(model_config(name), lora, causal)


def shape_of(config, lora: ChatTrainConfig | None = None, causal: bool = True) -> Shape:
    """A model's shape from its transformers config (with `lora`: its LoRA parameters and adapted modules), counted on
    the meta device."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    with torch.device("meta"):
        model = (AutoModelForCausalLM if causal else AutoModel).from_config(config)
    params = sum(p.numel() for p in model.parameters())
    h = config.hidden_size
    heads = config.num_attention_heads
    kind = config.model_type if config.model_type in ("gpt2",) else "llama" if causal else "encoder"
    shape = Shape(
        kind=kind,
        layers=config.num_hidden_layers,
        hidden=h,
        intermediate=getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * h,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or h // heads,
        vocab=config.vocab_size,
        params=params,
        dropout=float(getattr(config, "resid_pdrop", 0.0) or 0.0),
    )
    if lora is not None and getattr(lora, "method", "lora") == "lora":
        with torch.device("meta"):
            peft = with_lora(model, lora)
        shape.trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
        shape.lora_inputs = [
            _in_features(m) for n, m in peft.named_modules() if hasattr(m, "lora_A") and FIRST_LAYER.search(n)
        ]
    elif lora is not None:
        shape.trainable = params
    return shape


def _in_features(module) -> int:
    base = module.get_base_layer()
    return int(getattr(base, "in_features", 0) or base.weight.shape[0])  # GPT-2's Conv1D: weight [in, out]


# ----------------------------------------------------------------------------- activations


def decoder_activations(
    s: Shape,
    tokens: int,
    checkpointing: bool,
    lora_r: int = 0,
    lora_dropout: float = 0.0,
    device: str = "cuda",
    full: bool = False,
) -> dict[str, int]:
    """Activation bytes of one micro-batch of `tokens` tokens through a causal LM in bf16 (autocast or bf16 weights)
    with SDPA attention: what the forward pass keeps for the backward pass, plus the largest transient of the
    backward pass. Per token and layer, what autograd saves (read off the saved tensors of each op; checked against
    the measured peak in tests/test_plan.py):

        RMSNorm (llama)       its input in fp32 and 1/rms: 4h + 4, twice
        LayerNorm (gpt2)      its input in fp32, mean and 1/std: 4h + 8, twice
        SDPA                  q, k, v and the output in bf16, the log-sum-exp in fp32: 2·(2h + 2·kv) + 4·heads
        SwiGLU (llama)        gate, silu(gate), up: 3 · 2i
        GELU-tanh (gpt2)      x, tanh(·), 0.5·x, 1 + tanh(·): 4 · 2i; dropout masks after attention and MLP: 2·mask·h
        each LoRA module      lora_A's input in bf16, the dropout's mask, lora_B's input: (2 + mask)·d_in + 2r
        full fine-tuning      every linear's input in bf16 instead (the frozen ones keep none)

    with mask = 1 byte (a bool mask on CUDA; 4, a float mask, on the CPU; 0 without dropout). The loss head keeps the
    final norm's input and the fp32 log-softmax of the logits (4h + 4 + 4·vocab per token); its backward adds the fp32
    gradients of the log-softmax and of the logits (8·vocab). With gradient checkpointing each layer keeps only its
    input (2h) and the backward pass recomputes one layer at a time, whose saved tensors and gradients (B) come on top
    of them once the loss head is done. Returns the bytes kept for the backward pass and the peak on top of them."""
    h, i, v = s.hidden, s.intermediate, s.vocab
    kv = s.kv_heads * s.head_dim
    mask = 0 if lora_dropout == 0 else (1 if device == "cuda" else 4)
    attention = 2 * (2 * h + 2 * kv) + 4 * s.heads
    if s.kind == "gpt2":
        resid_mask = 0 if s.dropout == 0 else (1 if device == "cuda" else 2)
        norms, mlp = 2 * (4 * h + 8), 4 * 2 * i + 2 * resid_mask * h
    else:
        norms, mlp = 2 * (4 * h + 4), 3 * 2 * i
    if full:
        adapters = 2 * (h + h + h + i) if s.kind == "gpt2" else 2 * (h + h + 2 * h + i)
    else:
        adapters = sum((2 + mask) * d + 2 * lora_r for d in s.lora_inputs)
    per_layer = norms + attention + mlp + adapters
    head = 4 * h + 4 + 12 * v
    recompute = per_layer + LAYER_BACKWARD.get(s.kind, 6) * (h + i)
    kept = s.layers * (2 * h if checkpointing else per_layer)
    peak = max(head, recompute) if checkpointing else head
    return {"activations": tokens * kept, "backward peak": tokens * peak}


LAYER_BACKWARD = {"llama": 6, "gpt2": 10}
"""B per token in units of (h + i): the bf16 gradients and temporaries alive while a recomputed layer runs its
backward pass (the MLP's and the attention's widest tensors; GPT-2's GELU-tanh adds several of width i), measured on
the CPU (tests/test_plan.py)."""


def encoder_activations(s: Shape, batch: int, seq: int) -> int:
    """Korthikanti et al. (2022, eq. 1): 34·h + 5·a·s bytes per token and layer (16-bit activations, dropout masks,
    the attention scores kept): a bound for the encoders and GPT-2 of the smaller stages."""
    return batch * seq * s.layers * (34 * s.hidden + 5 * s.heads * seq)


def inference_activations(s: Shape, batch: int, seq: int) -> int:
    """The prefill's widest moment in one layer (bf16 q, k, v, out, gate, up, act) + the last position's fp32
    logits."""
    return batch * seq * 2 * (4 * s.hidden + 3 * s.intermediate) + batch * 4 * s.vocab


# ----------------------------------------------------------------------------- stages


@dataclass
class Need:
    """One GPU stage's need per GPU."""

    stage: str
    resources_field: str
    """The recipe field of the resources it runs on."""
    cpus: float
    gpus: float
    parts: dict[str, int]
    at: str
    """What it was computed at (batch, length, ZeRO stage, ...)."""
    fields: str
    """The recipe fields that change it."""
    budget: float = 1.0
    """The share of the GPU's memory the stage may fill (vLLM allocates gpu_memory_utilization of it)."""

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @classmethod
    def on(cls, stage: str, field_: str, cfg: Config, parts: dict[str, int], at: str, fields: str) -> Need:
        """The need of a stage that runs on the recipe's `field_` (e.g. "emotion.train_resources")."""
        section, name = field_.split(".")
        r = getattr(getattr(cfg, section), name)
        return cls(stage, field_, r.cpus, r.gpus, parts, at, fields)


def chat_training(cfg: Config, stage: str, device: str = "cuda") -> Need:
    """The per-GPU need of a chat-model stage's training (generator, conversation)."""
    c: ChatTrainConfig = getattr(cfg, stage)
    w = c.train_resources.workers
    s = model_shape(c.base_model, c)
    full = getattr(c, "method", "lora") == "full"
    bf16 = c.bf16(device)
    zero = c.zero_stage
    wbytes = 2 if bf16 else 4
    T = s.trainable
    parts: dict[str, int] = {}
    if zero == 3:
        layer = (s.params - 2 * s.vocab * s.hidden) // max(s.layers, 1)
        parts["weights (ZeRO-3 shard)"] = wbytes * s.params // w
        parts["gathered layers"] = wbytes * (2 * layer + s.vocab * s.hidden)
    else:
        parts["weights"] = wbytes * (s.params - (T if full else 0))
    if c.deepspeed and bf16:  # DeepSpeed's bf16: bf16 weight and gradient, fp32 master/m/v/grad partitions
        shard = w if zero >= 1 else 1
        parts["trainable: weights, grads, AdamW"] = 4 * T + 16 * T // shard
    else:  # autocast: fp32 weight, gradient, m, v + the bf16 copy (+ DDP's gradient buckets)
        parts["trainable: weights, grads, AdamW"] = 18 * T + (4 * T if w > 1 else 0)
    acts = decoder_activations(
        s, c.micro_batch * c.max_length, c.gradient_checkpointing, c.lora_r, c.lora_dropout, device, full
    )
    parts.update(acts)
    return Need.on(
        f"{stage} training",
        f"{stage}.train_resources",
        cfg,
        parts,
        f"{c.base_model} {'full' if full else f'LoRA r{c.lora_r}'}, micro-batch {c.micro_batch} × {c.max_length} "
        f"tokens, checkpointing {'on' if c.gradient_checkpointing else 'off'}, "
        + (f"ZeRO-{zero}" if c.deepspeed else "DDP" if w > 1 else "1 GPU")
        + f" × {w}",
        f"{stage}.micro_batch_size, {stage}.max_length, {stage}.gradient_checkpointing, {stage}.deepspeed",
    )


def _generation(s: Shape, batch: int, seq: int) -> dict[str, int]:
    """Generation with a KV cache: bf16 weights, the cache of the whole batch, a prefill."""
    return {
        "weights": 2 * s.params,
        "KV cache": s.kv_bytes_per_token * batch * seq,
        "activations": inference_activations(s, batch, seq),
    }


def needs(cfg: Config) -> list[Need]:
    """Every GPU stage of the recipe and what it needs per GPU."""
    out: list[Need] = []
    e, rc, g, cv = cfg.emotion, cfg.recommender, cfg.generator, cfg.conversation
    if e.train_resources.gpus or e.label_resources.gpus:
        out += _emotion(cfg)
    if rc.train_resources.gpus or rc.encode_resources.gpus:
        out += _recommender(cfg)
    if g.train_resources.gpus:
        out.append(chat_training(cfg, "generator"))
    if cv.train_resources.gpus:
        out.append(chat_training(cfg, "conversation"))
    if g.eval_resources.gpus:
        s = model_shape(g.base_model)
        seq = g.max_length + g.max_new_tokens
        out.append(
            Need.on(
                "generator evaluation",
                "generator.eval_resources",
                cfg,
                _generation(s, g.eval_batch_size, seq),
                f"{g.base_model} bf16, batch {g.eval_batch_size} × {seq} tokens",
                "generator.eval_batch_size, generator.max_length, generator.max_new_tokens",
            )
        )
    out += _serving(cfg)
    return out


def _emotion(cfg: Config) -> list[Need]:
    """The emotion classifier's full fine-tuning and its labelling pass (bf16), where they ask for a GPU."""
    e = cfg.emotion
    s = model_shape(e.classifier_model, causal=False)
    train = {
        "weights, grads, AdamW (fp32) + bf16 copy": 18 * s.params,
        "activations": encoder_activations(s, e.batch_size, e.max_length),
    }
    label = {"weights": 2 * s.params, "activations": inference_activations(s, e.label_batch_size, e.max_length)}
    stages = [
        ("emotion training", "train_resources", train, "full fine-tuning", e.batch_size, "emotion.batch_size"),
        ("emotion labelling", "label_resources", label, "bf16", e.label_batch_size, "emotion.label_batch_size"),
    ]
    return [
        Need.on(
            name,
            f"emotion.{res}",
            cfg,
            parts,
            f"{e.classifier_model} {how}, batch {b} × {e.max_length} tokens",
            f"{field_}, emotion.max_length",
        )
        for name, res, parts, how, b, field_ in stages
        if getattr(e, res).gpus
    ]


def _recommender(cfg: Config) -> list[Need]:
    rc = cfg.recommender
    enc = model_shape(rc.text_encoder, causal=False)
    out = []
    if rc.backbone == "unicrs":
        plm = model_shape(rc.plm)
        trainable = unicrs_trainable(cfg, plm)
        frozen = 4 * (enc.params + plm.params)  # loaded in fp32, autocast on CUDA
        micro = max(1, rc.batch_size // rc.train_resources.workers)
        prefix = rc.prompt_tokens + 2 * rc.max_context_entities
        seq = prefix + rc.max_context_tokens
        train_parts = {
            "frozen encoder + PLM (fp32)": frozen,
            "trainable: weights, grads, AdamW + bf16 copy": 18 * trainable,
            "activations (PLM, backward into the prefix)": encoder_activations(plm, micro, seq),
            "text encoder forward (no grad)": inference_activations(enc, micro, rc.max_context_tokens),
        }
        at = f"UniCRS: {rc.text_encoder} + {rc.plm}, micro-batch {micro} × {seq} tokens"
    else:
        train_parts = {"frozen text encoder (fp32)": 4 * enc.params}
        at = f"light: {rc.text_encoder}"
    if rc.train_resources.gpus:
        out.append(
            Need.on(
                "recommender training",
                "recommender.train_resources",
                cfg,
                train_parts,
                at,
                "recommender.batch_size, recommender.train_resources.workers, recommender.max_context_tokens",
            )
        )
    if rc.encode_resources.gpus:
        parts = {k: v for k, v in train_parts.items() if k.startswith("frozen")}
        parts["activations"] = inference_activations(enc, rc.batch_size, rc.max_context_tokens)
        out.append(
            Need.on(
                "recommender encoding / scoring",
                "recommender.encode_resources",
                cfg,
                parts,
                f"{rc.text_encoder} batch {rc.batch_size} × {rc.max_context_tokens} tokens",
                "recommender.batch_size, recommender.max_context_tokens",
            )
        )
    return out


def unicrs_trainable(cfg: Config, plm: Shape) -> int:
    """Trainable parameters of the UniCRS recommender, built on the meta device around the PLM's and the text
    encoder's real configs, with the dataset's KG size (the public ReDial KG, 31,161 entities and 25 relations,
    when the data is not at hand)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    rc = cfg.recommender
    n_entities, n_relations = _kg_size(cfg)
    with torch.device("meta"):
        model = UnicrsRecommender(
            rc,
            num_entities=n_entities,
            num_relations=n_relations,
            edge_index=torch.zeros(2, 0, dtype=torch.long),
            edge_type=torch.zeros(0, dtype=torch.long),
            item_ids=torch.zeros(1, dtype=torch.long),
            encoder=AutoModel.from_config(model_config(rc.text_encoder)),
            plm=AutoModelForCausalLM.from_config(model_config(rc.plm)).base_model,
        )
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _kg_size(cfg: Config) -> tuple[int, int]:
    kg = cfg.data.resolved_dir() / cfg.data.dataset / "kg"
    if (kg / "entity2id.json").exists() and (kg / "relation2id.json").exists():
        return len(json.loads((kg / "entity2id.json").read_text())), len(
            json.loads((kg / "relation2id.json").read_text())
        )
    return 31161, 25


def _serving(cfg: Config) -> list[Need]:
    """The Serve deployments that ask for a GPU (and, with `generator.engine: vllm`, the vLLM deployment)."""
    g, sv = cfg.generator, cfg.serve
    out = []
    for dep in sv.ALL_DEPLOYMENTS:
        actor = sv.deployment_options(dep).get("ray_actor_options") or {}
        gpus = float(actor.get("num_gpus", 0) or 0)
        if not gpus:
            continue
        f = f"serve.deployments.{dep}.ray_actor_options"
        if dep in ("Generator", "ChatModel") and not (dep == "Generator" and g.engine == "vllm"):
            s = model_shape(g.base_model)
            batch = sv.generator_batch_size if dep == "Generator" else 1
            seq = g.max_length + g.max_new_tokens if dep == "Generator" else s_context(g.base_model)
            parts = _generation(s, batch, seq)
            at = f"{g.base_model} bf16, batch {batch} × {seq} tokens"
            if dep == "Generator":
                c = model_shape(cfg.conversation.base_model)
                cseq = cfg.conversation.max_length + cfg.conversation.max_new_tokens
                parts["conversation module"] = 2 * c.params + c.kv_bytes_per_token * batch * cseq
                at += f" + conversation module {cfg.conversation.base_model}"
            out.append(Need(f"serve {dep}", f, float(actor.get("num_cpus", 1)), gpus, parts, at, f))
        elif dep == "Recommender":
            out += [
                Need(f"serve {dep}", f, float(actor.get("num_cpus", 1)), gpus, n.parts, n.at, f)
                for n in _recommender(cfg)[:1]
            ]
        elif dep == "EmotionDetector":
            s = model_shape(cfg.emotion.classifier_model, causal=False)
            parts = {"weights": 2 * s.params, "activations": inference_activations(s, sv.max_batch_size, 128)}
            out.append(Need(f"serve {dep}", f, float(actor.get("num_cpus", 1)), gpus, parts, "bf16", f))
    if g.engine == "vllm":
        out.append(vllm_need(cfg))
    return out


def s_context(name: str) -> int:
    """The longest sequence a model takes (its position limit)."""
    c = model_config(name)
    return int(getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", 2048))


def vllm_settings(cfg: Config) -> dict:
    """The vLLM engine settings the plan reads (`generator.vllm.engine_kwargs` over vLLM's defaults)."""
    g = cfg.generator
    kw = (g.vllm.get("engine_kwargs") or {}) if g.vllm else {}
    return {
        "max_model_len": int(kw.get("max_model_len", g.max_length + g.max_new_tokens)),
        "max_num_seqs": int(kw.get("max_num_seqs", 256)),
        "gpu_memory_utilization": float(kw.get("gpu_memory_utilization", 0.9)),
        "tensor_parallel_size": int(kw.get("tensor_parallel_size", 1)),
    }


def vllm_need(cfg: Config) -> Need:
    """vLLM: weights / tensor-parallel size + the KV cache of `max_num_seqs` full-length sequences (what it serves
    without preempting) + a prefill; it must fit inside `gpu_memory_utilization` of the GPU as well."""
    v = vllm_settings(cfg)
    s = model_shape(cfg.generator.base_model)
    tp = v["tensor_parallel_size"]
    parts = {
        "weights": 2 * s.params // tp,
        "KV cache": s.kv_bytes_per_token * v["max_num_seqs"] * v["max_model_len"] // tp,
        "activations": inference_activations(s, 1, v["max_model_len"]),
    }
    return Need(
        "serve vLLM engine",
        "generator.vllm",
        1.0,
        float(tp),
        parts,
        f"max_num_seqs {v['max_num_seqs']} × max_model_len {v['max_model_len']}, tensor parallel {tp}, "
        f"gpu_memory_utilization {v['gpu_memory_utilization']}",
        "generator.vllm.engine_kwargs (max_num_seqs, max_model_len, tensor_parallel_size)",
        budget=v["gpu_memory_utilization"],
    )


# ----------------------------------------------------------------------------- the check


@dataclass
class Row:
    need: Need
    node: NodeType | None
    """The node type with the smallest GPU among those the stage's resources can land on (None: none can)."""

    @property
    def available(self) -> int:
        """The GPU memory the stage may use there: its share of one GPU (vLLM: gpu_memory_utilization of it)."""
        if self.node is None:
            return 0
        return int(self.node.gpu_bytes * min(self.need.gpus, 1.0) * self.need.budget)

    @property
    def headroom(self) -> float:
        return 1 - self.need.total / self.available if self.available else -1.0

    @property
    def fits(self) -> bool:
        return self.node is not None and self.headroom >= HEADROOM


def rows(ns: list[Need], nodes: list[NodeType]) -> list[Row]:
    """Each need next to the smallest GPU among the node types that offer its CPUs and GPUs per worker."""
    out = []
    for n in ns:
        can = [t for t in nodes if t.cpus >= n.cpus and t.gpus >= n.gpus]
        out.append(Row(n, min(can, key=lambda t: t.gpu_bytes) if can else None))
    return out


def problems(table: list[Row]) -> list[str]:
    """One line per stage that does not fit, naming the recipe fields to change."""
    out = []
    for r in table:
        n = r.need
        if r.node is None:
            out.append(
                f"{n.stage}: no GPU node type offers {n.cpus:g} CPUs + {n.gpus:g} GPUs per worker ({n.resources_field})"
            )
        elif not r.fits:
            out.append(
                f"{n.stage}: needs {n.total / GIB:.1f} GiB per GPU, {r.node.gpu} of {r.node.name} "
                f"({r.node.source}) offers {r.available / GIB:.1f} GiB: {r.headroom:.0%} headroom, less than "
                f"{HEADROOM:.0%}; change {n.fields}"
            )
    return out


def plan(cfg: Config, nodes: list[NodeType]) -> list[Row]:
    """The recipe's GPU stages next to the node types."""
    return rows(needs(cfg), nodes)


def check(table: list[Row]) -> None:
    """ConfigError naming every stage that does not fit and the recipe fields that change it."""
    bad = problems(table)
    if bad:
        raise ConfigError("the memory plan does not fit the node types: " + "; ".join(bad))


def check_stage(cfg: Config, stage: str) -> None:
    """When a chat-model stage starts on GPUs (driver side): its need against the cluster's node types, where the
    cluster configs are at hand (`ECR_CLUSTER_DIR`, or the checkout's cluster/). Every GPU worker then checks the GPU
    it got (`check_gpu`)."""
    folder = cluster_dir()
    if folder is not None and getattr(cfg, stage).train_resources.gpus:
        check(rows([chat_training(cfg, stage)], node_types(folder)))


def check_gpu(cfg: Config, stage: str, total_bytes: int, name: str = "this GPU") -> None:
    """In a GPU worker, before it loads anything: the stage's need against this GPU's memory."""
    need = chat_training(cfg, stage)
    if need.total > (1 - HEADROOM) * total_bytes:
        raise ConfigError(
            f"{need.stage}: needs {need.total / GIB:.1f} GiB per GPU, {name} has {total_bytes / GIB:.1f} GiB: less "
            f"than {HEADROOM:.0%} headroom; change {need.fields} (`ecr-ray plan` shows the breakdown)"
        )


def table_markdown(table: list[Row]) -> str:
    """The plan as a Markdown table (what `ecr-ray plan` prints and docs/cluster.md shows)."""
    lines = [
        "| stage | per GPU | breakdown (GiB) | computed at | smallest GPU it lands on | headroom |",
        "|---|---:|---|---|---|---:|",
    ]
    for r in table:
        n = r.need
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in n.parts.items())
        where = f"{r.node.gpu} {r.available / GIB:.1f} GiB ({r.node.name}, {r.node.source})" if r.node else "none"
        mark = "" if r.fits else " ✗"
        lines.append(f"| {n.stage} | {n.total / GIB:.2f} GiB | {parts} | {n.at} | {where} | {r.headroom:.0%}{mark} |")
    return "\n".join(lines)
