"""`GeneratorPredictor`: the knowledge prompt of a recommended item → the emotion-aligned reply, composed with the
recommendation sentence (Serve's Generator, evaluation and the knowledge sweep)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, GeneratorConfig
from ..data.tables import load_dataset_kg
from ..hub import device, dtype, load_chat_model
from ..prompts import compose_response, fill_item, generation_messages, prompt_knowledge, render_prompt
from ..reviews.knowledge import knowledge_triples, load_knowledge
from .guard import EntityGuard, SentenceStream, sentences
from .model import ADAPTER_DIR, MODEL_DIR, compile_decode


class Prompter:
    """A recommended item → its knowledge (pn_t KG triples, pn_e review entities, in `generator.knowledge_format`) and
    the Eq. 8 prompt in the model's chat template. No model: the vLLM path (ecr_ray/serve/vllm.py) builds its prompts
    with it alone."""

    def __init__(self, tokenizer, kg, knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int):
        self.tok, self.kg, self.knowledge, self.gcfg, self.seed = tokenizer, kg, knowledge, gcfg, seed
        self.guard = EntityGuard(kg, knowledge) if gcfg.reply_guard else None

    @staticmethod
    def sources(cfg: Config) -> tuple:
        """(KG, per-movie knowledge) of a run; without a review DB, knowledge comes from the KG alone."""
        try:
            knowledge = load_knowledge(cfg.run_path)
        except FileNotFoundError:
            knowledge = {}
        return load_dataset_kg(cfg), knowledge

    def item_knowledge(self, item: int) -> dict:
        """pn_t triples with the item as head and pn_e of its review entities (seeded by item), in the config's
        `knowledge_format` (`prompts.prompt_knowledge`: with `entities`, no triples and their tails among the
        entities)."""
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

    def reply(self, item: int, first: str, knowledge: dict, text: str, dropped: list | None = None, tries: int = 0):
        """The answer for one generated `text`: u_e as the reply guard lets it through (`guard.py`), the final
        reply, and what the guard took out (`dropped`: earlier tries' too; `regenerations`: tries after the first)."""
        verdict = self.guard.check(item, text, first) if self.guard else None
        shown = verdict.text if verdict else text
        guard = {"checked": bool(verdict)}
        if verdict:
            dropped = [*(dropped or []), *verdict.dropped]
            guard.update(trimmed=bool(dropped), dropped=dropped, regenerations=tries)
        return {
            "empathetic": shown,
            "generated": text,
            "knowledge": knowledge,
            "response": compose_response(first, shown),
            "guard": guard,
        }

    def needs_retry(self, answer: dict, tries: int) -> bool:
        """Every sentence was dropped and the recipe allows another try (`generator.guard_retries`)."""
        g = self.guard is not None and answer["guard"]["trimmed"]
        return g and not answer["empathetic"] and tries < self.gcfg.guard_retries

    def retry_kwargs(self, kw: dict, tries: int) -> dict:
        """Another try samples (with the recipe's temperature/top_p unless given) under another seed."""
        return {**kw, "do_sample": True, "seed": self.seed + tries}


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
            compile_decode(model)
            pred.warm_up()
        return pred

    def knowledge_ids(self, knowledge: dict) -> list[list[int]]:
        """Token ids of the names in one prompt's knowledge (review entities, triple tails), with and without a
        leading space (how a name is spelt mid-sentence and at the start of one)."""
        names = [*knowledge["review_entities"], *(t.rsplit(" is ", 1)[-1] for t in knowledge["triples"])]
        seqs = {tuple(self.tok(v, add_special_tokens=False)["input_ids"]) for n in names for v in (n, " " + n)}
        return [list(s) for s in seqs if s]

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
        knowledge = kw.pop("knowledge", None)
        if knowledge and g.knowledge_bonus:
            from transformers import LogitsProcessorList

            out["logits_processor"] = LogitsProcessorList(
                [KnowledgeBonus([self.knowledge_ids(k) for k in knowledge], g.knowledge_bonus)]
            )
        seed = kw.pop("seed", None)
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        out.update(kw)  # e.g. cache_implementation="static"
        return out

    def generate(self, prompts: list[str], **kw) -> list[str]:
        """Greedy or sampled continuations of `prompts`; `knowledge` (one dict per prompt) turns on the
        `knowledge_bonus` for its names."""
        return [d.text for d in self.decode(prompts, **kw)]

    def decode(self, prompts: list[str], **kw) -> list[Decoded]:
        """`generate` with each row's token counts and whether max_new_tokens cut it."""
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        gen = self._gen_kwargs(**kw)
        out = self._run(enc, gen)
        texts = self.tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [Decoded(_clean(t), *n) for t, n in zip(texts, self.lengths(enc, out, gen["max_new_tokens"]))]

    def lengths(self, enc: dict, out, max_new_tokens: int) -> list[tuple[int, int, bool]]:
        """Per row of a `generate` output: (prompt tokens, new tokens before the end of sequence, whether it was
        cut at `max_new_tokens` rather than ended by the model)."""
        eos = self.model.generation_config.eos_token_id
        stop = {self.tok.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        rows = []
        for prompt, new in zip(enc["attention_mask"].sum(dim=1).tolist(), out[:, enc["input_ids"].shape[1] :].tolist()):
            end = next((i for i, t in enumerate(new) if t in stop), None)
            rows.append((int(prompt), len(new) if end is None else end, end is None and len(new) >= max_new_tokens))
        return rows

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
        """Replies for (item, recommendation sentence) pairs, decoded together, each checked by the reply guard; a
        reply left empty by the guard is generated again (sampling) up to `guard_retries` times."""
        prompts = [self.prompt(item, first) for item, first in requests]
        out: list[dict] = [{} for _ in requests]
        usage = [Usage() for _ in requests]
        todo, tries = list(range(len(requests))), 0
        while todo:
            gen = kw if tries == 0 else self.retry_kwargs(kw, tries)
            decoded = self.decode([prompts[i][0] for i in todo], knowledge=[prompts[i][2] for i in todo], **gen)
            for i, d in zip(todo, decoded):
                (item, _), (_, first, k) = requests[i], prompts[i]
                out[i] = self.reply(item, first, k, d.text, out[i].get("guard", {}).get("dropped"), tries)
                usage[i].add(d)
            todo = [i for i in todo if self.needs_retry(out[i], tries)]
            tries += 1
        return [{**o, **u.fields()} for o, u in zip(out, usage)]

    def respond(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> dict:
        return self.respond_batch([(item_entity_id, first_sentence)], **gen_kwargs)[0]

    def stream(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> Iterator[str | dict]:
        """Text of the emotion-aligned response as it is decoded (TextIteratorStreamer): token chunks without the
        reply guard, else each sentence once the guard has passed it (`SentenceStream`); then one dict, the
        answer's `guard` field with its `usage` and `finish_reason`. A reply the guard empties is generated again as
        in `respond_batch`."""
        from transformers import TextIteratorStreamer

        text, first, k = self.prompt(item_entity_id, first_sentence)
        enc = self.tok([text], return_tensors="pt", add_special_tokens=False).to(self.model.device)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        gen = {**self._gen_kwargs(knowledge=[k], **gen_kwargs), "streamer": streamer}

        result: dict = {}

        def run():
            result["out"] = self._run(enc, gen)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        sentences = SentenceStream(self.guard, item_entity_id, first)
        for chunk in streamer:
            if chunk:
                yield from sentences.feed(chunk) if self.guard else [chunk]
        yield from sentences.close() if self.guard else []
        thread.join()
        usage = Usage()
        usage.add(Decoded("", *self.lengths(enc, result["out"], gen["max_new_tokens"])[0]))
        if not self.guard:
            yield {"checked": False, **usage.fields()}
            return
        answer = {"empathetic": "", "guard": {"trimmed": bool(sentences.dropped), "dropped": sentences.dropped}}
        tries = 0
        while sentences.sent == 0 and self.needs_retry(answer, tries):
            tries += 1
            (d,) = self.decode([text], knowledge=[k], **self.retry_kwargs(gen_kwargs, tries))
            usage.add(d)
            answer = self.reply(item_entity_id, first, k, d.text, answer["guard"]["dropped"], tries)
            if answer["empathetic"]:
                yield " " + answer["empathetic"]
                sentences.sent = 1
        dropped = answer["guard"]["dropped"]
        yield {"checked": True, "trimmed": bool(dropped), "dropped": dropped, "regenerations": tries, **usage.fields()}


@dataclass
class Decoded:
    """One generated reply: its text (`_clean`ed), the prompt's and the reply's token counts, and whether
    max_new_tokens cut it (OpenAI's finish_reason `length`) rather than the model ending it (`stop`)."""

    text: str
    prompt_tokens: int
    new_tokens: int
    cut: bool


@dataclass
class Usage:
    """Token counts of every try behind one answer, and how its last try ended."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut: bool = False

    def add(self, d: Decoded) -> None:
        self.prompt_tokens += d.prompt_tokens
        self.completion_tokens += d.new_tokens
        self.cut = d.cut

    def fields(self) -> dict:
        """The answer's `usage` (OpenAI's prompt/completion token counts) and `finish_reason` (length | stop)."""
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        return {"usage": usage, "finish_reason": "length" if self.cut else "stop"}


class KnowledgeBonus:
    """A LogitsProcessor adding `bonus` to the logits of each row's knowledge names: to the first token of a name not
    yet written in the reply, and to the next token of a name the reply is in the middle of spelling. One list of
    token-id sequences per row; rows are left-padded, so the reply starts at the same column in every row."""

    def __init__(self, names: list[list[list[int]]], bonus: float):
        self.names, self.bonus, self.start = names, bonus, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]  # first call: nothing generated yet
        for row, seqs in enumerate(self.names):
            written = input_ids[row, self.start :].tolist()
            for seq in seqs:
                if _contains(written, seq):
                    continue
                k = next((k for k in range(len(seq) - 1, 0, -1) if written[len(written) - k :] == seq[:k]), 0)
                scores[row, seq[k]] += self.bonus
        return scores


def _contains(xs: list[int], seq: list[int]) -> bool:
    n = len(seq)
    return any(xs[i : i + n] == seq for i in range(len(xs) - n + 1))


def _clean(text: str) -> str:
    """Drop a trailing unfinished sentence (max_new_tokens cuts mid-sentence) when a finished one exists. Sentences
    end where the reply guard's do (`guard.sentences`: not after an initial, "John C. Reilly"), so a reply and its
    stream keep the same text."""
    parts = sentences(text)
    if len(parts) > 1 and parts[-1][-1] not in ".!?":
        parts.pop()
    return " ".join(parts)
