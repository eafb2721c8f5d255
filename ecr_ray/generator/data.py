"""The generator's training data (section 4.3.1): one example per review, the Eq. 8 knowledge prompt → the review,
and its tokenisation with the loss on the review tokens only (Eq. 9).

The prompt carries pn_e of the review's own linked entities (those the review-entity filter kept) and pn_t KG triples
of its movie whose tail the review mentions (the paper's E_r and T_r), chosen at random with a fixed seed, in the
`generator.knowledge_format` (triple lines, or their tails among the entities); with a tokenizer and a linker, only the
knowledge the visible (not cut) part of the review names. Examples are built once per run by a Ray task
(`build_examples`) into <run_dir>/generator/examples.parquet, which the Train workers read by path.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from ..config import Config, GeneratorConfig
from ..data.linker import EntityLinker
from ..data.tables import load_dataset_kg
from ..hub import resolve
from ..prompts import generation_messages, prompt_knowledge, render_prompt
from ..reviews.knowledge import load_knowledge
from .guard import VIEWING_CLAIM, sentences

EXAMPLES_FILE = "examples.parquet"


def _opening(text: str) -> str:
    return " ".join(text.lower().split()[:4])


def shape_target(review: str, entity_ids: set[int], gcfg: GeneratorConfig, linker=None) -> list[str]:
    """The sentences of one review's training target (before the cut to `max_length`): without the viewing claims
    (`drop_viewing_claims`) and, with `review_target: knowledge` and a linker, from the sentence before the first one
    that names an entity of `entity_ids`."""
    sents = sentences(review)
    if gcfg.drop_viewing_claims:
        sents = [s for s in sents if not VIEWING_CLAIM.search(s)] or sents[-1:]
    if gcfg.review_target == "knowledge" and linker is not None and entity_ids:
        first = next((i for i, s in enumerate(sents) if entity_ids & set(linker.link_ids(s))), None)
        if first is not None:
            sents = sents[max(first - 1, 0) :]
    return sents


def training_targets(reviews: list[dict], gcfg: GeneratorConfig, linker=None) -> list[str]:
    """One target per review (`shape_target`); then no more than `max_same_opening` targets open with the same four
    words: a later one starts a sentence further on (while it has more than one)."""
    shaped = [shape_target(r["review"], set(r["entities"]), gcfg, linker) for r in reviews]
    if gcfg.max_same_opening:
        seen: Counter = Counter()
        for sents in shaped:
            while len(sents) > 1 and seen[_opening(sents[0])] >= gcfg.max_same_opening:
                del sents[0]
            seen[_opening(sents[0])] += 1
    return [" ".join(s) for s in shaped]


def training_examples(
    reviews: list[dict], knowledge: dict[int, dict], gcfg: GeneratorConfig, seed: int, tokenizer=None, linker=None
) -> list[dict]:
    """reviews.parquet rows → [{"messages": Eq. 8 prompt, "target": the review, shaped by `training_targets`}].

    With `tokenizer` and `linker`, knowledge comes only from the part of the target that survives the cut to
    `max_length` (the part the loss sees): a prompt naming entities the visible target never mentions teaches the
    model to ignore its knowledge lines."""
    out = []
    for i, (r, target) in enumerate(zip(reviews, training_targets(reviews, gcfg, linker))):
        names = list(r["entity_names"])
        if tokenizer is not None and linker is not None:
            first = _messages(r, names, knowledge, gcfg, random.Random(f"{seed}:{i}"))
            seen = {m.entity_id for m in linker.link(visible_target(tokenizer, first, target, gcfg.max_length))}
            names = [n for e, n in zip(r["entities"], r["entity_names"]) if e in seen]
        out.append({"messages": _messages(r, names, knowledge, gcfg, random.Random(f"{seed}:{i}")), "target": target})
    return out


def _messages(
    review: dict, names: list[str], knowledge: dict[int, dict], gcfg: GeneratorConfig, rng: random.Random
) -> list[dict]:
    """E_r = the review's entities `names`; T_r = triples of its movie whose tail is one of them; in the
    `knowledge_format` of the config (`prompts.prompt_knowledge`)."""
    row = knowledge.get(review["entity_id"], {})
    named = set(names)
    t_r = [(t, tail) for t, tail in zip(row.get("triples", []), row.get("triple_tails", [])) if tail in named]
    ents, trips = prompt_knowledge(
        names,
        [t for t, _ in t_r],
        [tail for _, tail in t_r],
        gcfg.num_review_entities,
        gcfg.num_triples,
        gcfg.knowledge_format,
        rng,
    )
    return generation_messages(review["movie_name"], ents, trips, review["first_sentence"])


def visible_target(tokenizer, messages: list[dict], target: str, max_length: int) -> str:
    """The part of `target` that `encode` keeps (what the loss is computed on)."""
    labels = encode(tokenizer, messages, target, max_length)["labels"]
    return tokenizer.decode([t for t in labels if t != -100 and t != tokenizer.eos_token_id])


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """A rendered prompt's token ids, as training and every serving engine see them: the chat template already wrote
    the special tokens it wants (Llama-2's `<s>`), so the tokenizer adds none (a second BOS otherwise)."""
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def encode(tokenizer, messages: list[dict], target: str, max_length: int) -> dict:
    """Prompt + target token ids; labels mask the prompt (-100); the target is cut so the total fits."""
    prompt_ids = prompt_token_ids(tokenizer, render_prompt(tokenizer, messages))
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + eos
    prompt_ids = prompt_ids[-(max_length // 2) :]  # a very long prompt never leaves no room for the target
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


def build_examples(cfg: Config, out: Path) -> dict:
    """reviews.parquet → `out` (Parquet: messages as JSON, target); returns counts for the manifest. Run as a Ray
    task: it loads the tokenizer and the entity linker."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    reviews_path = cfg.run_path / "reviews" / "reviews.parquet"
    if not reviews_path.exists():
        raise FileNotFoundError(f"{reviews_path} not found: build the review DB first (`ecr-ray build_reviews`)")
    reviews = pq.read_table(reviews_path).to_pylist()
    if not reviews:
        raise ValueError(f"{reviews_path}: no reviews left after filtering")
    gcfg = cfg.generator
    examples = training_examples(
        reviews,
        load_knowledge(cfg.run_path),
        gcfg,
        cfg.seed,
        tokenizer=(tok := AutoTokenizer.from_pretrained(resolve(gcfg.base_model, cfg.offline))),
        linker=EntityLinker.from_kg(load_dataset_kg(cfg)),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {"messages": [json.dumps(e["messages"]) for e in examples], "target": [e["target"] for e in examples]}
        ),
        out,
    )
    visible = [visible_target(tok, e["messages"], e["target"], gcfg.max_length) for e in examples]  # what the loss sees
    return {
        "examples": len(examples),
        "visible_with_viewing_claim": sum(bool(VIEWING_CLAIM.search(v)) for v in visible),
        "visible_distinct_openings": len({_opening(v) for v in visible}),
        "examples_with_entities": sum("Related Entities: None" not in e["messages"][1]["content"] for e in examples),
        "examples_with_triples": sum("from KG: None" not in e["messages"][1]["content"] for e in examples),
    }


def read_examples(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [{"messages": json.loads(r["messages"]), "target": r["target"]} for r in pq.read_table(path).to_pylist()]
