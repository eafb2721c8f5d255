"""The reply to a dialogue, step by step (section 4.3): the user turns' emotions → the ranking → the recommendation
sentence u_r (Serve's template, or the conversation module's turn with its `<movie>` slots filled by the ranked
items) → the emotion-aligned u_e → the answer.

Pure steps, no models of their own: the ingress (`serve/app.py` `ECRIngress._answer`) runs them around its
deployment handles, the evaluation (`generator/evaluate.py` `recommend_contexts`) around the predictors in one Ray
task, and the Generator deployments use `recommendations` for u_r, so the reply evaluated is the reply served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .config import EMOTIONS
from .prompts import NO_ITEMS, recommendation_sentence

TEMPLATE, GENERATED = "template", "conversation"
"""`recommendation_source`: u_r is Serve's template, or the conversation module's turn with its slots filled."""


def known_emotions(dialogue: list[dict], known: Sequence[Any]) -> list:
    """Per turn: the emotion probabilities already known for a user turn (`known[i]`, None when not yet classified),
    None for a recommender turn."""
    return [known[i] if t["role"] == "user" else None for i, t in enumerate(dialogue)]


def classify_user_turns(dialogue: list[dict], emotions: list, predict: Callable[[list[str]], Any]) -> list:
    """`emotions` with every user turn still None classified by one `predict(texts)` call (9 probabilities each)."""
    out = list(emotions)
    need = [i for i, t in enumerate(dialogue) if t["role"] == "user" and out[i] is None]
    if need:
        for i, p in zip(need, predict([dialogue[i]["text"] for i in need])):
            out[i] = p
    return out


def ranked_items(ranking: dict) -> list[dict]:
    """The recommender's answer → its items, best first, as plain JSON (entity_id, name, score)."""
    return [
        {"entity_id": int(it["entity_id"]), "name": str(it["name"]), "score": float(it["score"])}
        for it in ranking.get("items", [])
    ]


def last_user_emotions(dialogue: list[dict], emotions: list):
    """The emotion probabilities of the dialogue's last user turn (None without one)."""
    return next((emotions[i] for i in range(len(dialogue) - 1, -1, -1) if dialogue[i]["role"] == "user"), None)


def template_sentence(dialogue: list[dict], emotions: list, items: list[dict]) -> str:
    """Serve's u_r: the template of the last user turn's strongest emotion naming the top item; no items: a prompt
    for more."""
    return recommendation_sentence(items[0]["name"], last_user_emotions(dialogue, emotions)) if items else NO_ITEMS


def slot_names(items: list[dict]) -> list[str]:
    """What fills a generated u_r's `<movie>` slots, in order: the names of all the ranked items (the request's
    `top_k`), best first."""
    return [it["name"] for it in items]


def recommendations(conversation, dialogues: list[list[dict]], names: list[list[str]], templates: list[str]):
    """u_r per dialogue: the conversation module's turn, slots filled by `names` (`conversation`: its
    `ConversationPredictor`), or the template when the run has no module (`conversation` None) or the turn names no
    movie. Each: text, source, usage (tokens read and written)."""
    if conversation is None:
        return [{"text": t, "source": TEMPLATE} for t in templates]
    return conversation.respond_batch(dialogues, names, templates)


def add_usage(total: dict, usage: dict | None) -> None:
    """Add one model call's token counts (a predictor's `usage`; none from a template) to `total`."""
    for k in ("prompt_tokens", "completion_tokens"):
        total[k] += int((usage or {}).get(k, 0))


def total_usage(usage: dict) -> dict:
    """OpenAI's `usage`: the tokens the models read (prompts) and wrote for one reply (u_r by the conversation
    module, u_e by the generator, every try of it), and their sum."""
    return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


def jsonable(x: Any) -> Any:
    """numpy scalars/arrays and tuples from the predictors → plain JSON types."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def compose(
    dialogue: list[dict],
    emotions: list,
    items: list[dict],
    ranking: dict,
    recommendation: dict,
    generated: dict | None,
    usage: dict,
) -> dict:
    """The answer of `POST /v1/recommend` (without `session_id`): `recommendation` = u_r (`text`, `source`),
    `generated` = the generator's u_e for the top item (None when not asked for or nothing was recommended)."""
    g = generated or {}
    knowledge = g.get("knowledge", {})
    explanation = dict(ranking.get("explanation", {}))
    explanation.update(
        triples=list(knowledge.get("triples", [])), review_entities=list(knowledge.get("review_entities", []))
    )
    return {
        "items": items,
        "user_emotions": [
            {e: round(float(p), 4) for e, p in zip(EMOTIONS, emotions[i])}
            for i, t in enumerate(dialogue)
            if t["role"] == "user"
        ],
        # guard: whether the reply guard took sentences out of u_e, and which (generator/guard.py)
        # recommendation_source: `conversation` (generated u_r, slots filled) or `template` (no module / no slot)
        # finish_reason: `length` when u_e was cut at max_new_tokens, else `stop`
        "response": {
            "recommendation": recommendation["text"],
            "recommendation_source": recommendation["source"],
            "empathetic": g.get("empathetic", ""),
            "final": g.get("response", recommendation["text"]),
            "guard": g.get("guard", {"checked": False}),
            "finish_reason": g.get("finish_reason", "stop"),
        },
        "explanation": jsonable(explanation),
        "turns": len(dialogue),
        "usage": total_usage(usage),
    }
