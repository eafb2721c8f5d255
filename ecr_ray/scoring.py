"""Evaluation of generated responses (section 5.3, Appendices D.2, E).

Offline (no LLM): distinct-1/2, length, emotion intensity by the emotion classifier, and a hallucination proxy —
KG entities named in a response (outside the item's own title) that are not linked to the recommended item (not the
item, not a 1-hop KG neighbour of it, not one of its review entities).

LLM-based (any OpenAI-compatible endpoint through the `openai` client): baseline responses with the Appendix E.1
prompts, and the Appendix E.2 scorer: the five metrics 0-9, responses under pseudonyms in a shuffled order, answers
parsed as "response name: score"; aggregate tables; Cohen's kappa between two raters' model rankings.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict

import numpy as np

from .config import EMOTIONS
from .data.kg import strip_disambiguation
from .prompts import METRICS, baseline_messages, parse_scores, scorer_prompt

# ----------------------------------------------------------------------------- offline metrics


def distinct_n(texts: list[str], n: int) -> float:
    """Corpus-level distinct-n: distinct n-grams / all n-grams (lower-cased whitespace tokens)."""
    grams = Counter()
    for t in texts:
        w = t.lower().split()
        grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def item_related(kg, item: int, knowledge: dict | None) -> set[int]:
    """Entities linked to the item: itself, 1-hop KG neighbours (any relation, both directions), review entities."""
    if not hasattr(kg, "_neighbours"):
        nb = defaultdict(set)
        for h, _, t in kg.triples.tolist():
            nb[h].add(t)
            nb[t].add(h)
        kg._neighbours = nb
    out = {item} | kg._neighbours.get(item, set())
    if knowledge:
        out |= set(knowledge.get("review_entities", []))
    return out


def without_title(kg, item: int, text: str) -> str:
    """`text` with the item's own title (with and without its year) blanked out: naming the film is neither using
    its knowledge nor making an entity up ("Chicago" in a reply about Chicago (2002) is the film, not the city)."""
    name = kg.names[item]
    for title in sorted({name, strip_disambiguation(name)}, key=len, reverse=True):
        if len(title) >= 2:
            text = re.sub(re.escape(title), lambda m: " " * len(m.group()), text, flags=re.I)
    return text


def emotion_intensity(probs: np.ndarray) -> np.ndarray:
    """Per response: the strongest non-neutral emotion probability of the classifier (0 = flat, 1 = clearly
    emotional)."""
    keep = [i for i, e in enumerate(EMOTIONS) if e != "neutral"]
    return probs[:, keep].max(axis=1)


def offline_metrics(
    texts: list[str], items: list[int], kg, linker, knowledge: dict[int, dict], emotion_probs: np.ndarray | None = None
) -> dict:
    linked = [linker.link_ids(without_title(kg, it, t)) for t, it in zip(texts, items)]
    halluc = [[e for e in ids if e not in item_related(kg, it, knowledge.get(it))] for ids, it in zip(linked, items)]
    n_linked, n_hall = sum(map(len, linked)), sum(map(len, halluc))
    out = {
        "n": len(texts),
        "distinct_1": round(distinct_n(texts, 1), 4),
        "distinct_2": round(distinct_n(texts, 2), 4),
        "words_mean": round(float(np.mean([len(t.split()) for t in texts])) if texts else 0.0, 2),
        "kg_entities_per_response": round(n_linked / max(len(texts), 1), 3),
        "item_entities_per_response": round((n_linked - n_hall) / max(len(texts), 1), 3),
        "halluc_entities_per_response": round(n_hall / max(len(texts), 1), 3),
        "halluc_share_of_linked": round(n_hall / n_linked, 3) if n_linked else 0.0,
        "responses_with_halluc": round(sum(bool(h) for h in halluc) / max(len(texts), 1), 3),
    }
    if emotion_probs is not None:
        out["emotion_intensity"] = round(float(emotion_intensity(emotion_probs).mean()), 4)
        top = [EMOTIONS[i] for i in emotion_probs.argmax(axis=1)]
        out["top_emotion"] = dict(Counter(top).most_common(3))
    return out


# ----------------------------------------------------------------------------- LLM client side


def make_client(base_url: str, timeout: float = 120.0):
    """OpenAI client for any compatible endpoint; the key comes from OPENAI_API_KEY only (never logged)."""
    from openai import OpenAI

    return OpenAI(
        base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "none", timeout=timeout, max_retries=0
    )  # tenacity below does the retrying


def chat(client, model: str, messages: list[dict], max_tokens: int = 128, temperature: float = 0.0) -> str:
    import openai
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    @retry(
        retry=retry_if_exception_type(
            (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError)
        ),
        wait=wait_exponential(min=1, max=30),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def call() -> str:
        r = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=temperature
        )
        return r.choices[0].message.content or ""

    return call()


def baseline_responses(
    client, model: str, histories: list[list[str]], items: list[str], style: str = "llama", max_tokens: int = 96
) -> list[str]:
    """Appendix E.1: [HISTORY] + "Please only recommend the movie [ITEM] ..." → the LLM's response."""
    return [chat(client, model, baseline_messages(h, it, style), max_tokens).strip() for h, it in zip(histories, items)]


def score_example(
    client,
    model: str,
    scenario: str,
    responses: dict[str, str],
    rng: random.Random,
    metrics: tuple[str, ...] = METRICS,
    max_tokens: int = 64,
) -> list[dict]:
    """One scenario, every model's response, every metric: pseudonyms ("Response A", ...) in a fresh shuffled order
    per metric. Returns [{"metric", "scores": {model: score}, "missing": [models], "answer"}]."""
    out = []
    for metric in metrics:
        names = list(responses)
        rng.shuffle(names)
        pseudo = {f"Response {chr(65 + i)}": m for i, m in enumerate(names)}
        prompt = scorer_prompt(metric, [(p, responses[m]) for p, m in pseudo.items()], scenario)
        answer = chat(client, model, [{"role": "user", "content": prompt}], max_tokens)
        parsed = parse_scores(answer, list(pseudo))
        out.append(
            {
                "metric": metric,
                "scores": {pseudo[p]: s for p, s in parsed.items()},
                "missing": [pseudo[p] for p in pseudo if p not in parsed],
                "answer": answer,
            }
        )
    return out


def aggregate(scored: list[list[dict]]) -> dict[str, dict[str, float]]:
    """Mean score per model per metric over examples (missing answers excluded, counted under `_missing`)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    missing: Counter = Counter()
    for example in scored:
        for rec in example:
            for m, s in rec["scores"].items():
                sums[m][rec["metric"]].append(s)
            missing.update(rec["missing"])
    table = {m: {k: round(float(np.mean(v)), 3) for k, v in per.items()} for m, per in sums.items()}
    for m in table:
        table[m]["_missing"] = missing.get(m, 0)
    return table


def _ranks(scores: dict[str, float], models: list[str]) -> list[int]:
    """Dense rank of each model (1 = best) within one example and metric."""
    order = sorted({scores[m] for m in models}, reverse=True)
    return [order.index(scores[m]) + 1 for m in models]


def ranking_kappa(rater_a: list[list[dict]], rater_b: list[list[dict]]) -> dict[str, float]:
    """Cohen's kappa between two raters' model rankings per metric (the paper's reliability check), over examples
    where both raters scored every model."""
    from sklearn.metrics import cohen_kappa_score

    ra, rb = defaultdict(list), defaultdict(list)
    for ex_a, ex_b in zip(rater_a, rater_b):
        for a, b in zip(ex_a, ex_b):
            models = sorted(set(a["scores"]) & set(b["scores"]))
            if len(models) < 2 or a["missing"] or b["missing"]:
                continue
            ra[a["metric"]] += _ranks(a["scores"], models)
            rb[a["metric"]] += _ranks(b["scores"], models)
    out = {m: round(float(cohen_kappa_score(ra[m], rb[m])), 3) if len(set(ra[m]) | set(rb[m])) > 1 else 1.0 for m in ra}
    if out:
        out["mean"] = round(float(np.mean(list(out.values()))), 3)
    return out
