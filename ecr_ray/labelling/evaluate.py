"""What the LLM labels look like: status and label counts, unmapped words, tokens and cost, and agreement with the
seed labels on the turns both labelled."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from ..config import Config
from .client import estimate_cost
from .data import endpoint_model


def agreement(labelled: pa.Table, seeds: dict[str, list[str]]) -> dict:
    """How far the LLM's 9-type labels agree with the seed labels on the turns both labelled."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [
        (r["labels"], seeds[r["turn_id"]])
        for r in labelled.select(["turn_id", "labels"]).to_pylist()
        if r["turn_id"] in seeds
    ]
    if not pairs:
        return {"turns": 0}
    tp = sum(len(set(a) & set(b)) for a, b in pairs)
    n_pred, n_gold = sum(len(a) for a, _ in pairs), sum(len(b) for _, b in pairs)
    firsts = [(a[0] if a else "none", b[0]) for a, b in pairs]
    return {
        "turns": len(pairs),
        "exact_set": round(sum(set(a) == set(b) for a, b in pairs) / len(pairs), 4),
        "any_overlap": round(sum(bool(set(a) & set(b)) for a, b in pairs) / len(pairs), 4),
        "first_label": round(sum(a == b for a, b in firsts) / len(pairs), 4),
        "micro_precision": round(tp / max(n_pred, 1), 4),
        "micro_recall": round(tp / max(n_gold, 1), 4),
        "cohen_kappa_first_label": round(float(cohen_kappa_score([a for a, _ in firsts], [b for _, b in firsts])), 4),
        "no_label": sum(not a for a, _ in pairs),
    }


def summarise(cfg: Config, table: pa.Table, seeds: dict[str, list[str]], seconds: float) -> dict:
    ids = table["turn_id"].to_pylist()
    ptok, ctok = sum(table["prompt_tokens"].to_pylist()), sum(table["completion_tokens"].to_pylist())
    unmapped = Counter(w for ws in table["unmapped"].to_pylist() for w in ws)
    errors = [r for r in table.select(["turn_id", "error"]).to_pylist() if r["error"]]
    return {
        "endpoint_model": endpoint_model(cfg),
        "rows": len(ids),
        "status": dict(Counter(table["status"].to_pylist())),
        "label_counts": dict(Counter(l for ls in table["labels"].to_pylist() for l in ls).most_common()),
        "unmapped_words": dict(unmapped.most_common()),
        "errors": {"count": len(errors), "examples": errors[:5]},
        "tokens": {"prompt": ptok, "completion": ctok},
        "estimated_cost_usd": estimate_cost(
            ptok, ctok, cfg.emotion.llm_price_prompt_per_1k, cfg.emotion.llm_price_completion_per_1k
        ),
        "agreement_with_seeds": agreement(table, seeds),
        "this_run_seconds": round(seconds, 1),
    }
