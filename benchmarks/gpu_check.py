"""The GPU check: the paper recipe's risky path on one GPU, in one process, without Ray; one JSON report.

    python benchmarks/gpu_check.py --out gpu_check.json                  # CUDA: Llama-2-7b's shape, the paper recipe
    python benchmarks/gpu_check.py --device cpu --tiny --out check.json  # the same code at tiny scale (tests)

It imports torch, transformers, peft, torch-geometric, accelerate, DeepSpeed (for its second part) and ecr_ray's own
modules, never Ray: it runs on a GPU machine that has only those (docs/cluster.md says how to carry DeepSpeed and
pydantic there). The models are randomly initialised from the shipped configs (ecr_ray/model_configs), created
directly on the device: nothing is downloaded. In order:

1. lora: a Llama of Llama-2-7b's shape in bf16 with the recipe's LoRA (r, targets), gradient checkpointing, micro-batch
   and length (random tokens, every one a label), trained by transformers' Trainer with the TrainingArguments of
   ecr_ray/generator/train.py for `--steps` steps: step time, tokens/s, and the peak GPU memory next to the figure of
   `ecr-ray plan` for one GPU without DeepSpeed (`plan_ratio`; within 15% is the plan's promise).
2. deepspeed: the same, with the recipe's DeepSpeed config (ZeRO-2, bf16) through the Trainer in a world of one
   process (NCCL on CUDA, gloo on the CPU): 3 steps with a checkpoint at step 2, then a fresh model and Trainer
   resumed from that checkpoint for step 3: its loss and adapter equal the uninterrupted run's (save → load).
3. recommender: UniCRS training steps (forward, backward, AdamW under bf16 autocast) with roberta-base's and
   DialoGPT-small's shapes, the public ReDial KG's size (31,161 entities, 25 relations, random edges) and the recipe's
   batch per worker: step time and peak memory next to the plan's figure.
4. decode: `GeneratorPredictor` generating for the Eq. 8 prompts of sample items with the model of part 1 at the
   recipe's Serve batch and max_new_tokens (a BPE tokenizer trained here on the sample reviews stands in for
   Llama-2's): decode tokens/s.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedTokenizerFast, Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecr_ray.config import SAMPLE_DATA_DIR, ChatTrainConfig, load_config  # noqa: E402
from ecr_ray.data.kg import load_kg  # noqa: E402
from ecr_ray.generator.model import with_lora  # noqa: E402
from ecr_ray.generator.predictor import GeneratorPredictor  # noqa: E402
from ecr_ray.generator.train import collator, training_arguments  # noqa: E402
from ecr_ray.plan import GIB, chat_training, model_config, needs  # noqa: E402
from ecr_ray.recommender.model import weighted_loss  # noqa: E402
from ecr_ray.recommender.unicrs import UnicrsRecommender  # noqa: E402

TINY_LLAMA = {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY_LLAMA |= {"num_key_value_heads": 4, "vocab_size": 4000}
TINY_ENCODER = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_GPT2 = {"n_embd": 64, "n_layer": 2, "n_head": 2}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny model shapes and sequences: the same code on the CPU")
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--steps", type=int, default=10, help="timed LoRA steps (after one warm-up step)")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible (--device cpu --tiny runs the same code on the CPU)")
    overrides = (
        {"generator.max_length": 64, "generator.micro_batch_size": 2, "generator.batch_size": 8} if a.tiny else {}
    )
    cfg = load_config(a.recipe, overrides)
    device = torch.device(a.device)
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "recipe": a.recipe,
        "tiny": a.tiny,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ecr-gpu-check-") as tmp:
        model, report["lora"] = lora_part(cfg, device, a.tiny, a.steps, Path(tmp))
        report["decode"] = decode_part(cfg, device, model)
        del model
        _free(device)
        report["deepspeed"] = deepspeed_part(cfg, device, a.tiny, Path(tmp))
    _free(device)
    report["recommender"] = recommender_part(cfg, device, a.tiny)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))
    return report


# ----------------------------------------------------------------------------- models from the shipped configs


def llama(cfg, device, tiny: bool):
    """A randomly initialised Llama of the recipe generator's shape (tiny: a few layers of width 128), bf16, created on
    `device` (no host copy, nothing downloaded)."""
    config = model_config(cfg.generator.base_model)
    if tiny:
        config.update(TINY_LLAMA)
    torch.manual_seed(cfg.seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.config.use_cache = False
    return model


def token_rows(n: int, length: int, vocab: int, seed: int) -> list[dict]:
    """Random sequences of `length` tokens, every one a label: the longest examples the recipe allows."""

    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": ids})
    return rows


class Timer:
    """A TrainerCallback timing each optimizer step (synchronised with the GPU)."""

    def __init__(self, device):
        timer = self

        class _Cb(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                _sync(device)
                timer.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                _sync(device)
                timer.times.append(time.perf_counter() - timer.t)

        self.times: list[float] = []
        self.t = 0.0
        self.callback = _Cb()


def train(model, g: ChatTrainConfig, device, steps: int, out: Path, seed: int, resume: str | None = None):
    """transformers' Trainer with the stage's TrainingArguments (ecr_ray/generator/train.py) on random tokens."""
    args = training_arguments(g, str(out), steps, device.type, seed)
    args.save_total_limit = None  # keep every checkpoint: part 2 resumes from an earlier one
    rows = token_rows(steps * g.micro_batch * g.accumulation, g.max_length, model.config.vocab_size, seed)
    timer = Timer(device)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator(0), callbacks=[timer.callback])
    trainer.remove_callback(PrinterCallback)  # stdout is for the report
    trainer.train(resume_from_checkpoint=resume)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer, losses, timer.times


def one_gpu(cfg, **overrides):
    """The recipe's generator training as one GPU runs it: one worker, the recipe's micro-batch, no accumulation."""
    g = cfg.generator
    return load_config(
        cfg.recipe,
        {
            "generator.train_resources": {"workers": 1, "cpus": 1, "gpus": 1},
            "generator.batch_size": g.micro_batch,
            "generator.micro_batch_size": g.micro_batch,
            "generator.max_length": g.max_length,
            **overrides,
        },
    )


# ----------------------------------------------------------------------------- 1. LoRA step


def lora_part(cfg, device, tiny: bool, steps: int, tmp: Path):

    single = one_gpu(cfg, **{"generator.deepspeed": {}})
    g1 = single.generator
    model = with_lora(llama(cfg, device, tiny), g1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _, losses, times = train(model, g1, device, steps + 1, tmp / "lora", cfg.seed)
    planned = chat_training(single, "generator").total if not tiny else None
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    step = statistics.median(times[1:] or times)
    model.eval()
    return model, {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "lora_r": g1.lora_r,
        "lora_targets": g1.lora_targets,
        "micro_batch": g1.micro_batch,
        "max_length": g1.max_length,
        "gradient_checkpointing": g1.gradient_checkpointing,
        "steps": len(times),
        "step_s_median": round(step, 4),
        "step_s_first": round(times[0], 3),
        "tokens_per_s": round(g1.micro_batch * g1.max_length / step, 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "peak_gib": None if peak is None else round(peak / GIB, 2),
        "plan_gib": None if planned is None else round(planned / GIB, 2),
        "plan_ratio": None if peak is None or planned is None else round(peak / planned, 3),
    }


# ----------------------------------------------------------------------------- 2. DeepSpeed save → load


def deepspeed_part(cfg, device, tiny: bool, tmp: Path) -> dict:
    g = cfg.generator
    if not g.deepspeed:
        return {"skipped": f"recipe {cfg.recipe!r} trains the generator without DeepSpeed"}
    _one_process_world(device)
    # no dropout: the resumed step must equal the uninterrupted one
    one = one_gpu(cfg, **{"generator.lora_dropout": 0.0, "generator.checkpoint_every": 2}).generator
    t0 = time.perf_counter()
    model = with_lora(llama(cfg, device, tiny), one)
    _, straight, _ = train(model, one, device, 3, tmp / "ds", cfg.seed)
    saved = tmp / "ds" / "checkpoint-2"
    shards = sorted(p.name for p in saved.glob("global_step2/*"))
    del model
    _free(device)
    model = with_lora(llama(cfg, device, tiny), one)
    trainer, resumed, _ = train(model, one, device, 3, tmp / "ds-resumed", cfg.seed, resume=str(saved))
    reference = load_file(str(tmp / "ds" / "checkpoint-3" / "adapter_model.safetensors"))
    again = load_file(str(tmp / "ds-resumed" / "checkpoint-3" / "adapter_model.safetensors"))
    diff = max(float((reference[k].float() - again[k].float()).abs().max()) for k in reference)
    del model, trainer
    return {
        "config": one.deepspeed,
        "zero_stage": one.zero_stage,
        "backend": "nccl" if device.type == "cuda" else "gloo",
        "checkpoint_files": shards,
        "loss_step3_straight": round(straight[-1], 5),
        "loss_step3_resumed": round(resumed[-1], 5),
        "adapter_max_abs_diff": diff,
        "round_trip_ok": abs(straight[-1] - resumed[-1]) < 1e-3 and diff < 1e-3,
        "seconds": round(time.perf_counter() - t0, 1),
        "bf16": one.bf16(device.type),
    }


def _one_process_world(device) -> None:
    """The environment of a world of one process (what Ray Train sets for each worker)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")


# ----------------------------------------------------------------------------- 3. UniCRS step


def recommender_part(cfg, device, tiny: bool) -> dict:
    rc = cfg.recommender
    enc_cfg, plm_cfg = model_config(rc.text_encoder), model_config(rc.plm)
    n_entities, n_relations, n_edges = (500, 25, 2000) if tiny else (31161, 25, 200_000)
    if tiny:
        enc_cfg.update(TINY_ENCODER)
        plm_cfg.update(TINY_GPT2)
    batch = 4 if tiny else max(1, rc.batch_size // rc.train_resources.workers)
    g = torch.Generator().manual_seed(cfg.seed)

    def rand(hi, *shape):
        return torch.randint(0, hi, shape, generator=g)

    with torch.device(device):
        model = UnicrsRecommender(
            rc,
            num_entities=n_entities,
            num_relations=n_relations,
            edge_index=rand(n_entities, 2, n_edges).to(device),
            edge_type=rand(n_relations, n_edges).to(device),
            item_ids=torch.arange(0, n_entities, 5, device=device),
            encoder=AutoModel.from_config(enc_cfg),
            plm=AutoModelForCausalLM.from_config(plm_cfg).base_model,
        )
    model.train()
    L, T = rc.max_context_entities, rc.max_context_tokens if not tiny else 32
    n_items, nnz = len(model.item_ids), batch * L * 4
    cooc = torch.sparse_coo_tensor(
        torch.stack([rand(batch * L, nnz), rand(n_entities, nnz)]),
        torch.rand(nnz, generator=g),
        (batch * L, n_entities),
    )
    data = {
        "entities": rand(n_entities, batch, L),
        "enc_ids": rand(enc_cfg.vocab_size, batch, T),
        "plm_ids": rand(plm_cfg.vocab_size, batch, T),
        "emo_ids": rand(9, batch, L, 3),  # ReDial's 9 emotions
        "emo_probs": torch.rand(batch, L, 3, generator=g),
        "cooc": cooc,
    }
    data = {k: v.to(device) for k, v in data.items()}
    target, weight = rand(n_items, batch).to(device), torch.ones(batch, device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=rc.lr)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(3):
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = weighted_loss(model(data), target, weight)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    planned = next((n.total for n in needs(cfg) if n.stage == "recommender training"), None) if not tiny else None
    return {
        "text_encoder": rc.text_encoder,
        "plm": rc.plm,
        "batch": batch,
        "entities": n_entities,
        "step_s_median": round(statistics.median(times[1:]), 4),
        "loss": round(loss.item(), 4),
        "peak_gib": None if peak is None else round(peak / GIB, 2),
        "plan_gib": None if planned is None else round(planned / GIB, 2),
    }


# ----------------------------------------------------------------------------- 4. decode


def decode_part(cfg, device, model) -> dict:
    g = copy.deepcopy(cfg.generator)
    g.reply_guard = False  # generation speed alone
    tok = sample_tokenizer(min(8000, model.config.vocab_size))
    kg = load_kg(SAMPLE_DATA_DIR / "redial" / "kg")
    pred = GeneratorPredictor(tok, model, kg, {}, g, cfg.seed)
    batch = cfg.serve.generator_batch_size
    items = sorted(kg.item_set)[:batch]
    prompts = [pred.prompt(i, "You might like <movie>.")[0] for i in items]
    pred.generate(prompts[:1], max_new_tokens=2)  # warm-up
    new_tokens = 8 if g.max_length <= 64 else g.max_new_tokens
    enc = pred.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    _sync(device)
    t = time.perf_counter()
    out = pred._run(enc, pred._gen_kwargs(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False))
    _sync(device)
    seconds = time.perf_counter() - t
    n = int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
    return {
        "batch": batch,
        "prompt_tokens": int(enc["input_ids"].shape[1]),
        "new_tokens": n,
        "seconds": round(seconds, 3),
        "decode_tokens_per_s": round(n / seconds, 1),
    }


def sample_tokenizer(vocab: int):
    """A byte-level BPE tokenizer trained on the sample reviews and KG names (a stand-in for Llama-2's: the check
    measures speed, not text), with <s>, </s> as BOS/EOS/pad."""
    texts = [json.loads(line)["resp"] for line in (SAMPLE_DATA_DIR / "reviews" / "imdb_reviews_ecr.jsonl").open()]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


def _sync(device) -> None:

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device) -> None:

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
