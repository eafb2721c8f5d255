"""Emotion-aligned generator (section 4.3): a Llama-architecture chat model fine-tuned (PEFT LoRA, or fully) on the
emotional reviews with the Eq. 8 knowledge prompt; the Ray Train loop; and `GeneratorPredictor` for inference.

Training examples: one per review; the prompt carries pn_e of the review's own linked entities and pn_t KG triples
of its movie whose tail the review mentions (the paper's E_r and T_r), chosen at random with a fixed seed. The loss
is the cross-entropy of the review tokens only (Eq. 9). At inference the knowledge is the item's: triples with the
item as head and entities mentioned ≥ 2 times in its reviews (`reviews/movie_knowledge.parquet`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from ..config import Config, GeneratorConfig
from ..prompts import compose_response, fill_item, generation_messages, render_prompt, select_knowledge

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ADAPTER_DIR = "adapter"  # PEFT adapter (method=lora)
MODEL_DIR = "model"  # full weights (method=full)
STATE_FILE = "trainer_state.pt"


# ----------------------------------------------------------------------------- examples

def training_examples(reviews: list[dict], knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int,
                      tokenizer=None, linker=None) -> list[dict]:
    """reviews.parquet rows → [{"messages": Eq. 8 prompt, "target": review}].

    With `tokenizer` and `linker`, knowledge comes only from the part of the review that survives the cut to
    `max_length` (the part the loss sees): a prompt naming entities the visible target never mentions teaches the
    model to ignore its knowledge lines."""
    out = []
    for i, r in enumerate(reviews):
        names = list(r["entity_names"])
        if tokenizer is not None and linker is not None:
            first = _messages(r, names, knowledge, gcfg, random.Random(f"{seed}:{i}"))
            seen = {m.entity_id for m in linker.link(visible_target(tokenizer, first, r["review"], gcfg.max_length))}
            names = [n for e, n in zip(r["entities"], r["entity_names"]) if e in seen]
        out.append({"messages": _messages(r, names, knowledge, gcfg, random.Random(f"{seed}:{i}")),
                    "target": r["review"]})
    return out


def _messages(review: dict, names: list[str], knowledge: dict[int, dict], gcfg: GeneratorConfig,
              rng: random.Random) -> list[dict]:
    """E_r = the review's entities `names`; T_r = triples of its movie whose tail is one of them."""
    triples = [t for t in knowledge.get(review["entity_id"], {}).get("triples", [])
               if any(t.endswith(f" is {n}") for n in names)]
    ents, trips = select_knowledge(names, triples, gcfg.num_review_entities, gcfg.num_triples, rng)
    return generation_messages(review["movie_name"], ents, trips, review["first_sentence"])


def visible_target(tokenizer, messages: list[dict], target: str, max_length: int) -> str:
    """The part of `target` that `encode` keeps (what the loss is computed on)."""
    labels = encode(tokenizer, messages, target, max_length)["labels"]
    return tokenizer.decode([t for t in labels if t != -100 and t != tokenizer.eos_token_id])


def encode(tokenizer, messages: list[dict], target: str, max_length: int) -> dict:
    """Prompt + target token ids; labels mask the prompt (-100); the target is cut so the total fits."""
    prompt_ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + eos
    prompt_ids = prompt_ids[-(max_length // 2):]  # a very long prompt never leaves no room for the target
    target_ids = target_ids[: max_length - len(prompt_ids)]
    return {"input_ids": prompt_ids + target_ids, "labels": [-100] * len(prompt_ids) + target_ids}


def collate(batch: list[dict], pad_id: int):
    import torch

    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = torch.tensor(b["input_ids"])
        labels[i, :k] = torch.tensor(b["labels"])
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def with_lora(model, gcfg: GeneratorConfig):
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(r=gcfg.lora_r, lora_alpha=gcfg.lora_alpha, lora_dropout=gcfg.lora_dropout,
                    target_modules=list(gcfg.lora_targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lc)


# ----------------------------------------------------------------------------- Ray Train loop

def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker. `config`: generator (dict), seed, examples, cpus, stop_at, compile_shm (bool)."""
    import ray.train
    import ray.train.torch
    import torch

    from .llm import load_chat_model

    gcfg = GeneratorConfig(**config["generator"])
    torch.set_num_threads(max(int(config.get("cpus", 1)), 1))
    torch.manual_seed(config["seed"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if gcfg.use_gpu else torch.device("cpu")

    tok, model = load_chat_model(gcfg.base_model)
    model.config.use_cache = False
    if gcfg.method == "lora":
        model = with_lora(model, gcfg)
    model.train()
    data = [encode(tok, e["messages"], e["target"], gcfg.max_length) for e in config["examples"][rank::world]]
    per_epoch = max(len(data) // gcfg.batch_size, 1)
    total = gcfg.max_steps or gcfg.epochs * per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=gcfg.lr, weight_decay=gcfg.weight_decay)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, gcfg.warmup_steps, total)

    start, losses = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt:  # resume: same run name → the last reported checkpoint
        with ckpt.as_directory() as d:
            _load_weights(model, Path(d), gcfg)
            state = torch.load(Path(d) / STATE_FILE, weights_only=False)
            scheduler.load_state_dict(state["scheduler"])
            if state["optimizer"]:  # DeepSpeed's optimizer state is sharded over the workers: it restarts
                optimizer.load_state_dict(state["optimizer"])
            for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                group["lr"] = lr  # the schedule goes on where it stopped
            start, losses = state["step"], state["losses"]

    engine = None
    if gcfg.deepspeed:
        import deepspeed

        from .deepspeed_config import deepspeed_config

        if not config.get("compile_shm", True):  # tests: skip the ~2 min shm-comm op build
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=params, optimizer=optimizer, lr_scheduler=scheduler,
            config=deepspeed_config(gcfg.deepspeed, gcfg.batch_size, world))
        model, device = engine, engine.device
    else:
        model = model.to(device)
        if world > 1:
            model = ray.train.torch.prepare_model(model, move_to_device=False)

    end = min(total, config.get("stop_at") or total)  # a run may stop early and be resumed later
    t0 = time.perf_counter()
    for step in range(start, end):
        epoch, pos = divmod(step, per_epoch)
        order = list(range(len(data)))
        random.Random(f"{config['seed']}:{epoch}").shuffle(order)
        batch = collate([data[order[(pos * gcfg.batch_size + j) % len(data)]] for j in range(gcfg.batch_size)],
                        tok.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        lr = optimizer.param_groups[0]["lr"]
        loss = model(**batch).loss
        if engine is not None:
            engine.backward(loss)
            engine.step()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
        done = step + 1
        metrics = {"step": done, "loss": losses[-1], "lr": lr,
                   "s_per_step": round((time.perf_counter() - t0) / (done - start), 2)}
        if done % gcfg.checkpoint_every == 0 or done == end:
            with tempfile.TemporaryDirectory() as d:
                _save(model, tok, Path(d), gcfg, engine, rank)
                if rank == 0:
                    torch.save({"optimizer": optimizer.state_dict() if engine is None else {},
                                "scheduler": scheduler.state_dict(),
                                "step": done, "losses": losses}, Path(d) / STATE_FILE)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d) if rank == 0 else None)
        elif done % 10 == 0:
            ray.train.report(metrics)


def _unwrap(model):
    while hasattr(model, "module") and not hasattr(model, "peft_config"):
        model = model.module
    return model


def _save(model, tok, d: Path, gcfg: GeneratorConfig, engine, rank: int) -> None:
    """PEFT adapter (`save_pretrained`) or full weights. Under ZeRO-3 the shards are gathered first."""
    import contextlib

    inner = _unwrap(model)
    gather = contextlib.nullcontext()
    if engine is not None and engine.zero_optimization_stage() == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters([p for p in inner.parameters() if p.requires_grad or
                                                    gcfg.method == "full"], modifier_rank=None)
    with gather:
        if rank == 0:
            inner.save_pretrained(d / (ADAPTER_DIR if gcfg.method == "lora" else MODEL_DIR))
            if gcfg.method == "full":
                tok.save_pretrained(d / MODEL_DIR)


def _load_weights(model, d: Path, gcfg: GeneratorConfig) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if gcfg.method == "lora":
        set_peft_model_state_dict(model, load_file(str(d / ADAPTER_DIR / "adapter_model.safetensors")))
    else:
        import transformers

        src = transformers.AutoModelForCausalLM.from_pretrained(d / MODEL_DIR)
        model.load_state_dict(src.state_dict())


# ----------------------------------------------------------------------------- the training stage

def train(cfg: Config, run_name: str = "generator", stop_at: int | None = None, compile_shm: bool = True) -> dict:
    """Review DB → Ray Train TorchTrainer → `<run_dir>/generator/{adapter|model}` + manifest.json. Rerunning with the
    same `run_name` resumes from the last checkpoint; `stop_at` ends this invocation after that many steps in all
    (the LR schedule still spans the whole run), so a long run can go in short resumable pieces. `compile_shm=False`
    skips DeepSpeed's shm-comm op build on CPU (tests)."""
    import pyarrow.parquet as pq
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from ..reviews import load_knowledge

    gcfg = cfg.generator
    reviews_path = cfg.run_path / "reviews" / "reviews.parquet"
    if not reviews_path.exists():
        raise FileNotFoundError(f"{reviews_path} not found: build the review DB first (`ecr-ray build_reviews`)")
    reviews = pq.read_table(reviews_path).to_pylist()
    if not reviews:
        raise ValueError(f"{reviews_path}: no reviews left after filtering")
    from transformers import AutoTokenizer

    from ..data.linker import EntityLinker
    from ..data.tables import load_dataset_kg
    from .llm import resolve_model_dir

    examples = training_examples(reviews, load_knowledge(cfg.run_path), gcfg, cfg.seed,
                                 tokenizer=AutoTokenizer.from_pretrained(resolve_model_dir(gcfg.base_model)),
                                 linker=EntityLinker.from_kg(load_dataset_kg(cfg)))
    out = cfg.run_path / "generator"
    cpus = max(int(ray.available_resources().get("CPU", 1)) // gcfg.num_workers, 1)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"generator": asdict(gcfg), "seed": cfg.seed, "examples": examples, "cpus": cpus,
                           "stop_at": stop_at, "compile_shm": compile_shm},
        scaling_config=ray.train.ScalingConfig(num_workers=gcfg.num_workers, use_gpu=gcfg.use_gpu,
                                               resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(name=run_name, storage_path=str(out / "ray"),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training produced no checkpoint: {result.error}")
    name = ADAPTER_DIR if gcfg.method == "lora" else MODEL_DIR
    with result.checkpoint.as_directory() as d:
        import torch

        state = torch.load(Path(d) / STATE_FILE, weights_only=False)
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(Path(d) / name, out / name)
    losses = state["losses"]
    manifest = {
        "stage": "generator",
        "config_hash": cfg.section_hash("generator", "seed"),
        "inputs": {"reviews": json.loads((cfg.run_path / "reviews" / "manifest.json").read_text())["config_hash"]},
        "method": gcfg.method, "base_model": gcfg.base_model, "run_name": run_name,
        "examples": len(examples),
        "examples_with_entities": sum("Related Entities: None" not in e["messages"][1]["content"] for e in examples),
        "examples_with_triples": sum("from KG: None" not in e["messages"][1]["content"] for e in examples),
        "steps": state["step"], "total_steps": gcfg.max_steps or gcfg.epochs * max(
            len(examples) // (gcfg.batch_size * gcfg.num_workers), 1), "batch_size": gcfg.batch_size,
        "max_length": gcfg.max_length, "lora_targets": gcfg.lora_targets,
        "loss_first10": round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
        "loss_last10": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
        "losses": losses, "fit_seconds": round(time.perf_counter() - t0, 1),
        "metrics": result.metrics,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


# ----------------------------------------------------------------------------- inference

class GeneratorPredictor:
    """Knowledge prompt → emotion-aligned response, composed with the recommendation sentence."""

    def __init__(self, tokenizer, model, kg, knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int):
        self.tok, self.model, self.kg, self.knowledge, self.gcfg, self.seed = (
            tokenizer, model, kg, knowledge, gcfg, seed)
        self.tok.padding_side = "left"  # batched generation continues every row from its own last token
        self._caches: dict[int, object] = {}  # batch size → static KV cache (compiled decoding only)
        self._decode_lock = threading.Lock()

    @classmethod
    def load(cls, cfg: Config, adapter: str | Path | None = None, zero_shot: bool = False) -> "GeneratorPredictor":
        """Base model + the trained adapter of `cfg.run_path/generator` (or `adapter`); `zero_shot` = no adapter.
        Without a review DB in the run dir, knowledge comes from the KG alone."""
        from ..data.tables import load_dataset_kg
        from ..reviews import load_knowledge
        from .llm import inference_dtype, load_chat_model

        gcfg = cfg.generator
        dtype = inference_dtype(gcfg.dtype)
        gen_dir = cfg.run_path / "generator"
        if not zero_shot and gcfg.method == "full":
            tok, model = load_chat_model(str(gen_dir / MODEL_DIR), dtype=dtype)
        else:
            tok, model = load_chat_model(gcfg.base_model, dtype=dtype)
            if not zero_shot:
                path = Path(adapter) if adapter else gen_dir / ADAPTER_DIR
                if not (path / "adapter_config.json").exists():
                    raise FileNotFoundError(f"{path}: no PEFT adapter; train it first (`ecr-ray train_generator`)")
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()  # merged: no LoRA overhead
        model.eval()
        try:
            knowledge = load_knowledge(cfg.run_path)
        except FileNotFoundError:
            knowledge = {}
        pred = cls(tok, model, load_dataset_kg(cfg), knowledge, gcfg, cfg.seed)
        if gcfg.compile:
            from .llm import compile_decode

            compile_decode(model)
            pred.warm_up()
        return pred

    def warm_up(self) -> None:
        """Compile the decode graph of every `compile_batch_sizes` now, not at a user's first request."""
        for b in sorted(set(self.gcfg.compile_batch_sizes)):
            self.generate(["Hello"] * b, max_new_tokens=2, min_new_tokens=2, do_sample=False)

    def item_knowledge(self, item: int) -> dict:
        """pn_t triples with the item as head and pn_e entities mentioned ≥2 times in its reviews (seeded by item)."""
        from ..reviews import movie_triples

        row = self.knowledge.get(item)
        ents = list(row["review_entity_names"]) if row else []
        triples = list(row["triples"]) if row else movie_triples(self.kg, item)
        rng = random.Random(f"{self.seed}:{item}")
        ents, triples = select_knowledge(ents, triples, self.gcfg.num_review_entities, self.gcfg.num_triples, rng)
        return {"triples": triples, "review_entities": ents}

    def item_name(self, item: int) -> str:
        if not 0 <= item < len(self.kg.names):
            raise ValueError(f"item_entity_id {item} is not a KG entity (0..{len(self.kg.names) - 1})")
        return self.kg.names[item]

    def prompt(self, item: int, first_sentence: str) -> tuple[str, str, dict]:
        name = self.item_name(item)
        first = fill_item(first_sentence, name)
        k = self.item_knowledge(item)
        msgs = generation_messages(name, k["review_entities"], k["triples"], first)
        return render_prompt(self.tok, msgs), first, k

    def _gen_kwargs(self, **kw) -> dict:
        g = self.gcfg
        out = {"max_new_tokens": kw.pop("max_new_tokens", g.max_new_tokens),
               "do_sample": kw.pop("do_sample", g.do_sample),
               "repetition_penalty": kw.pop("repetition_penalty", g.repetition_penalty),
               "use_cache": True, "pad_token_id": self.tok.pad_token_id}
        if out["do_sample"]:
            out["temperature"] = kw.pop("temperature", g.temperature)
            out["top_p"] = kw.pop("top_p", g.top_p)
        else:
            kw.pop("temperature", None), kw.pop("top_p", None)
        seed = kw.pop("seed", None)
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        out.update(kw)  # e.g. cache_implementation="static"
        return out

    def generate(self, prompts: list[str], **kw) -> list[str]:
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = self._run(enc, self._gen_kwargs(**kw))
        return [_clean(t) for t in self.tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]

    def _run(self, enc: dict, gen: dict):
        """model.generate; with `compile` and a compiled batch size, on that size's own static KV cache. The
        compiled graph (frozen weights) is bound to the cache's tensors, so each size keeps one cache for good,
        zeroed before each call and used by one call at a time. Other batch sizes, and prompts too long for the
        cache, decode eagerly (same result; batches of 8 are faster eagerly anyway, docs/generator.md)."""
        import torch

        rows, length = enc["input_ids"].shape
        if (not self.gcfg.compile or rows not in self.gcfg.compile_batch_sizes
                or length + gen["max_new_tokens"] > self.gcfg.max_cache_len):
            with torch.inference_mode():
                return self.model.generate(**enc, **gen)
        from transformers import StaticCache

        with self._decode_lock, torch.inference_mode():
            if rows not in self._caches:
                self._caches[rows] = StaticCache(config=self.model.config, max_cache_len=self.gcfg.max_cache_len)
            cache = self._caches[rows]
            cache.reset()
            return self.model.generate(**enc, **gen, cache=cache)

    def respond_batch(self, requests: list[tuple[int, str]], **kw) -> list[dict]:
        prompts = [self.prompt(item, first) for item, first in requests]
        texts = self.generate([p for p, _, _ in prompts], **kw)
        return [{"empathetic": t, "knowledge": k, "response": compose_response(first, t)}
                for t, (_, first, k) in zip(texts, prompts)]

    def respond(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> dict:
        return self.respond_batch([(item_entity_id, first_sentence)], **gen_kwargs)[0]

    def stream(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> Iterator[str]:
        """Text chunks of the emotion-aligned response as they are decoded (TextIteratorStreamer)."""
        from transformers import TextIteratorStreamer

        text, _, _ = self.prompt(item_entity_id, first_sentence)
        enc = self.tok([text], return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        gen = {**self._gen_kwargs(**gen_kwargs), "streamer": streamer}

        def run():
            self._run(enc, gen)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from (chunk for chunk in streamer if chunk)
        thread.join()


def _clean(text: str) -> str:
    """Drop a trailing unfinished sentence (max_new_tokens cuts mid-sentence) when a finished one exists."""
    text = " ".join(text.split())
    cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    if text and text[-1] not in ".!?" and cut > 0:
        return text[: cut + 1]
    return text
