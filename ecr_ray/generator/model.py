"""The generator model: a Llama-architecture chat model (the embedded SmolLM2-135M, or any path / hub id) with a
PEFT LoRA adapter (or fully fine-tuned), and compiled decoding for CPU serving."""

from __future__ import annotations

import shutil

from ..config import GeneratorConfig
from ..hub import load_chat_model

ADAPTER_DIR = "adapter"  # PEFT adapter (method=lora)
MODEL_DIR = "model"  # full weights (method=full)
MERGED_DIR = "merged"  # base + adapter merged, for engines that load plain weights (vLLM)


def with_lora(model, gcfg: GeneratorConfig):
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(
        r=gcfg.lora_r,
        lora_alpha=gcfg.lora_alpha,
        lora_dropout=gcfg.lora_dropout,
        target_modules=list(gcfg.lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lc)


def compile_decode(model) -> None:
    """Make `generate` run its decode steps torch.compile'd (the prefill stays eager, so prompt lengths never
    recompile). One graph per batch size, compiled at its first use (~50 s for SmolLM2 on 2 cores). Each graph must
    be given the same `transformers.StaticCache` object on every call (reset in between): freezing binds the graph
    to the tensors of the cache it was compiled with, and a fresh cache would silently decode garbage."""
    import torch._inductor.config as inductor
    from transformers import CompileConfig

    # Freezing constant-folds the weights and prepacks them for oneDNN: most of the CPU gain.
    # It is process-wide, so only inference processes call this.
    inductor.freezing = True
    # Inductor fuses plain attention; SDPA over a 512-slot static cache is ~20% slower per token on CPU.
    model.set_attn_implementation("eager")
    cc = CompileConfig(fullgraph=True, dynamic=False, mode="default")
    cc._compile_all_devices = True  # transformers only auto-compiles on accelerators unless told
    model.generation_config.compile_config = cc


def merge_adapter(cfg) -> str:
    """Base model + the run's LoRA adapter merged into plain weights at `<run_dir>/generator/merged` (what vLLM loads),
    in the generator's dtype. Run as a Ray task after training."""
    from peft import PeftModel

    g = cfg.generator
    gen = cfg.run_path / "generator"
    tok, base = load_chat_model(g.base_model, "float32" if g.dtype == "float32" else "bfloat16", "cpu", cfg.offline)
    merged = PeftModel.from_pretrained(base, str(gen / ADAPTER_DIR)).merge_and_unload()
    tmp = gen / (MERGED_DIR + ".tmp")
    merged.save_pretrained(tmp)
    tok.save_pretrained(tmp)

    shutil.rmtree(gen / MERGED_DIR, ignore_errors=True)
    tmp.rename(gen / MERGED_DIR)
    return str(gen / MERGED_DIR)
