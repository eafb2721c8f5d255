"""`GeneratorPredictor`: the knowledge prompt of a recommended item → the emotion-aligned reply, composed with the
recommendation sentence (Serve's Generator, evaluation and the knowledge sweep)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

from ..config import Config, GeneratorConfig
from ..prompts import compose_response, fill_item, generation_messages, prompt_knowledge, render_prompt
from .model import ADAPTER_DIR, MODEL_DIR


class Prompter:
    """A recommended item → its knowledge (pn_t KG triples, pn_e review entities, in `generator.knowledge_format`) and
    the Eq. 8 prompt in the model's chat template. No model: the vLLM path (ecr_ray/serve/vllm.py) builds its prompts
    with it alone."""

    def __init__(self, tokenizer, kg, knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int):
        self.tok, self.kg, self.knowledge, self.gcfg, self.seed = tokenizer, kg, knowledge, gcfg, seed

    @staticmethod
    def sources(cfg: Config) -> tuple:
        """(KG, per-movie knowledge) of a run; without a review DB, knowledge comes from the KG alone."""
        from ..data.tables import load_dataset_kg
        from ..reviews.knowledge import load_knowledge

        try:
            knowledge = load_knowledge(cfg.run_path)
        except FileNotFoundError:
            knowledge = {}
        return load_dataset_kg(cfg), knowledge

    def item_knowledge(self, item: int) -> dict:
        """pn_t triples with the item as head and pn_e of its review entities (seeded by item), in the config's
        `knowledge_format` (`prompts.prompt_knowledge`: with `entities`, no triples and their tails among the
        entities)."""
        from ..reviews.knowledge import knowledge_triples

        row = self.knowledge.get(item)
        ents = list(row["review_entity_names"]) if row else []
        triples, tails = (list(row["triples"]), list(row["triple_tails"])) if row else knowledge_triples(self.kg, item)
        g = self.gcfg
        rng = random.Random(f"{self.seed}:{item}")
        ents, triples = prompt_knowledge(
            ents, triples, tails, g.num_review_entities, g.num_triples, g.knowledge_format, rng
        )
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


class GeneratorPredictor(Prompter):
    """Knowledge prompt → emotion-aligned response, composed with the recommendation sentence."""

    def __init__(self, tokenizer, model, kg, knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int):
        super().__init__(tokenizer, kg, knowledge, gcfg, seed)
        self.model = model
        self.tok.padding_side = "left"  # batched generation continues every row from its own last token
        self._caches: dict[int, object] = {}  # batch size → static KV cache (compiled decoding only)
        self._decode_lock = threading.Lock()

    @classmethod
    def load(cls, cfg: Config, adapter: str | Path | None = None, zero_shot: bool = False) -> GeneratorPredictor:
        """Base model + the trained adapter of `cfg.run_path/generator` (or `adapter`); `zero_shot` = no adapter.
        Without a review DB in the run dir, knowledge comes from the KG alone."""
        from ..hub import device, dtype, load_chat_model

        gcfg = cfg.generator
        on = device(gcfg.device)
        dt = dtype(gcfg.dtype, on)
        gen_dir = cfg.run_path / "generator"
        if not zero_shot and gcfg.method == "full":
            tok, model = load_chat_model(str(gen_dir / MODEL_DIR), dt, on)
        else:
            tok, model = load_chat_model(gcfg.base_model, dt, on, cfg.offline)
            if not zero_shot:
                path = Path(adapter) if adapter else gen_dir / ADAPTER_DIR
                if not (path / "adapter_config.json").exists():
                    raise FileNotFoundError(f"{path}: no PEFT adapter; train it first (`ecr-ray train_generator`)")
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()  # merged: no LoRA overhead
        model.eval()
        pred = cls(tok, model, *cls.sources(cfg), gcfg, cfg.seed)
        if gcfg.compile:
            from .model import compile_decode

            compile_decode(model)
            pred.warm_up()
        return pred

    def warm_up(self) -> None:
        """Compile the decode graph of every `compile_batch_sizes` now, not at a user's first request."""
        for b in sorted(set(self.gcfg.compile_batch_sizes)):
            self.generate(["Hello"] * b, max_new_tokens=2, min_new_tokens=2, do_sample=False)

    def _gen_kwargs(self, **kw) -> dict:
        g = self.gcfg
        out = {
            "max_new_tokens": kw.pop("max_new_tokens", g.max_new_tokens),
            "do_sample": kw.pop("do_sample", g.do_sample),
            "repetition_penalty": kw.pop("repetition_penalty", g.repetition_penalty),
            "use_cache": True,
            "pad_token_id": self.tok.pad_token_id,
        }
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
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        out = self._run(enc, self._gen_kwargs(**kw))
        return [_clean(t) for t in self.tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]

    def _run(self, enc: dict, gen: dict):
        """model.generate; with `compile` and a compiled batch size, on that size's own static KV cache. The
        compiled graph (frozen weights) is bound to the cache's tensors, so each size keeps one cache for good,
        zeroed before each call and used by one call at a time. Other batch sizes, and prompts too long for the
        cache, decode eagerly (same result; batches of 8 are faster eagerly anyway, docs/generator.md)."""
        import torch

        rows, length = enc["input_ids"].shape
        if (
            not self.gcfg.compile
            or rows not in self.gcfg.compile_batch_sizes
            or length + gen["max_new_tokens"] > self.gcfg.max_cache_len
        ):
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
        return [
            {"empathetic": t, "knowledge": k, "response": compose_response(first, t)}
            for t, (_, first, k) in zip(texts, prompts)
        ]

    def respond(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> dict:
        return self.respond_batch([(item_entity_id, first_sentence)], **gen_kwargs)[0]

    def stream(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> Iterator[str]:
        """Text chunks of the emotion-aligned response as they are decoded (TextIteratorStreamer)."""
        from transformers import TextIteratorStreamer

        text, _, _ = self.prompt(item_entity_id, first_sentence)
        enc = self.tok([text], return_tensors="pt", add_special_tokens=False).to(self.model.device)
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
