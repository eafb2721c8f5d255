"""The memory plan (ecr_ray/plan.py, `ecr-ray plan`): its activation formula against the peak the same training step
measures on the CPU (tiny Llama and GPT-2 configs, bf16 autocast, PEFT LoRA, SDPA, with and without gradient
checkpointing), the node types read from the cluster configs, the paper recipe fitting them, and the errors that
name the recipe field."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from ecr_ray.config import PROJECT_ROOT, ConfigError, GeneratorConfig, load_config
from ecr_ray.generator.model import with_lora
from ecr_ray.jobs import plan as plan_job
from ecr_ray.plan import (
    GIB,
    check,
    check_gpu,
    decoder_activations,
    model_shape,
    needs,
    node_types,
    plan,
    shape_of,
)

CLUSTER = PROJECT_ROOT / "cluster"


def measured_peak(step) -> int:
    """Peak bytes of live tensors while `step` runs, above what was live before: torch's memory profiler records every
    allocation and free of the CPU allocator (the CUDA allocator's max_memory_allocated has no CPU counterpart)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        live += size if action == Action.CREATE else -size if action == Action.DESTROY else 0
        peak = max(peak, live)
    return peak


def _step(model, ids):
    """One forward + backward as transformers' Trainer runs it on the CPU with bf16: under autocast, the model
    output dropped before the backward pass (Trainer.training_step keeps only the loss)."""

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()

    run()  # warm-up: the LoRA gradients exist from here on, as they do after the first step
    for p in model.parameters():
        p.grad = None
    return run


@pytest.mark.parametrize(
    "arch, layers, vocab, kv_heads, checkpointing",
    [
        ("llama", 4, 1000, 4, False),
        ("llama", 2, 8000, 4, False),  # the loss head dominates
        ("llama", 4, 100, 2, True),  # grouped-query attention; the recomputed layer dominates
        ("llama", 2, 8000, 4, True),
        ("gpt2", 4, 1000, 0, False),
        ("gpt2", 4, 100, 0, True),
    ],
)
def test_activation_formula_matches_the_measured_peak(arch, layers, vocab, kv_heads, checkpointing):
    torch.manual_seed(0)
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=128,
            intermediate_size=344,
            num_attention_heads=4,
            num_key_value_heads=kv_heads,
            num_hidden_layers=layers,
            vocab_size=vocab,
        )
        model, targets = LlamaForCausalLM(config), ["q_proj", "k_proj", "v_proj", "o_proj"]
    else:  # DialoGPT's architecture; attention dropout off: the CPU's SDPA has no fused kernel with dropout
        config = GPT2Config(n_embd=128, n_head=4, n_layer=layers, vocab_size=vocab, attn_pdrop=0.0, embd_pdrop=0.0)
        model, targets = GPT2LMHeadModel(config), ["c_attn", "c_proj", "c_fc"]
    g = GeneratorConfig(lora_r=8, lora_dropout=0.05, lora_targets=targets)
    model = with_lora(model.to(torch.bfloat16), g)
    model.config.use_cache = False
    if checkpointing:  # what the Trainer calls for `activation_checkpointing`
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    batch, seq = 2, 64
    measured = measured_peak(_step(model, torch.randint(0, vocab, (batch, seq))))
    estimate = sum(decoder_activations(shape_of(config, g), batch * seq, checkpointing, 8, 0.05, "cpu").values())
    print(f"{arch} L{layers} V{vocab} checkpointing {checkpointing}: planned / measured {estimate / measured:.3f}")
    assert estimate == pytest.approx(measured, rel=0.15), (estimate, measured)


def test_shapes_from_the_shipped_configs_on_the_meta_device():
    llama = model_shape("meta-llama/Llama-2-7b-chat-hf", GeneratorConfig(lora_r=32, lora_targets=["q_proj", "v_proj"]))
    assert llama.params == 6_738_415_616  # Llama-2-7b, counted on the meta device
    assert llama.trainable == 32 * 2 * 32 * (4096 + 4096)  # r · (in + out) per adapted module, 2 per layer
    assert llama.lora_inputs == [4096, 4096] and llama.kv_bytes_per_token == 2 * 32 * 4096 * 2
    gpt2 = model_shape("microsoft/DialoGPT-small", GeneratorConfig(lora_targets=["c_attn", "c_proj", "c_fc"]))
    assert gpt2.kind == "gpt2" and gpt2.params == 124_439_808 and gpt2.lora_inputs == [768, 768, 768, 3072]
    assert model_shape("roberta-base", causal=False).params == 124_645_632


def test_node_types_of_the_cluster_configs():
    nodes = {(n.source, n.name): n for n in node_types(CLUSTER)}
    assert nodes["aws.yaml", "worker.gpu4"].gpu == "A10G" and nodes["aws.yaml", "worker.gpu4"].gpus == 4
    assert nodes["aws.yaml", "worker.gpu8"].gpu == "A100-40GB"
    assert nodes["gcp.yaml", "worker_gpu1"].gpu == "L4"
    kuberay = [n for n in nodes.values() if n.source.startswith("kuberay/")]
    assert kuberay and all(n.gpu == "A10G" and n.cpus > 0 for n in kuberay)
    assert not any(n.gpus == 0 for n in nodes.values())  # CPU-only node types never host a GPU stage


def test_paper_recipe_fits_its_node_types():
    cfg = load_config("paper")
    table = plan(cfg, node_types(CLUSTER))
    check(table)  # raises if any stage lacks 15% headroom
    stages = {r.need.stage: r for r in table}
    assert {"generator training", "conversation training", "recommender training", "serve Generator"} <= set(stages)
    gen = stages["generator training"]
    assert gen.node.gpu == "A10G" and gen.need.total < 0.85 * 23028 * 2**20
    assert gen.need.parts["weights"] == 2 * 6_738_415_616  # ZeRO-2: each GPU holds the whole bf16 base


def test_a_stage_that_does_not_fit_names_the_recipe_fields():
    cfg = load_config("paper", {"generator.gradient_checkpointing": False})  # 11 GiB of activations more
    with pytest.raises(ConfigError, match=r"generator training: needs .* GiB per GPU, A10G .*micro_batch_size"):
        check(plan(cfg, node_types(CLUSTER)))
    with pytest.raises(ConfigError, match="generator training: needs"):
        check_gpu(cfg, "generator", 23028 * 2**20, "NVIDIA A10G")
    check_gpu(load_config("paper"), "generator", 80 * GIB, "NVIDIA H100")  # fits


def test_vllm_engine_is_planned_inside_its_memory_utilization():
    cfg = load_config(
        "paper",
        {"generator.engine": "vllm", "generator.vllm": {"engine_kwargs": {"max_model_len": 1024, "max_num_seqs": 64}}},
    )
    (vllm,) = [n for n in needs(cfg) if n.stage == "serve vLLM engine"]
    assert vllm.parts["KV cache"] == 64 * 1024 * 2 * 32 * 4096 * 2 and vllm.budget == 0.9
    with pytest.raises(ConfigError, match=r"serve vLLM engine: .*generator.vllm.engine_kwargs"):
        check(plan(cfg, node_types(CLUSTER)))  # 32 GiB of cache on a 24 GB GPU


def test_plan_job_prints_the_table(capsys):
    assert plan_job.main(["--recipe", "paper"]) == 0
    out = capsys.readouterr().out
    assert "| generator training |" in out and "A10G" in out and "✗" not in out
    assert plan_job.main(["--recipe", "demo"]) == 0
    assert "no stage of this recipe asks for a GPU" in capsys.readouterr().out
