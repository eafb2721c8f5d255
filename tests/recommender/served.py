"""Dialogues as a client sends them, for the recommender's serving tests: the demo test split (its served inputs held
equal to training's) and a short liked-movie dialogue."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq


def served_and_trained(cfg) -> tuple[dict, dict, object]:
    """Every test sample's dialogue as raw turns (ReDial @ids included) with its user turns' emotion probabilities,
    through the serving predictor (`RecommenderPredictor.inputs`), and the batch training built for the same samples;
    and the test split."""
    from ecr_ray.data.tables import read_table
    from ecr_ray.recommender.data import load_batchers
    from ecr_ray.recommender.predictor import RecommenderPredictor

    p = RecommenderPredictor.load(cfg)
    _, batchers = load_batchers(p.dir / "prepared", ("test",))
    split = batchers["test"].s
    by_conv: dict[str, list[dict]] = {}
    for t in sorted(
        read_table(cfg.run_path, "turns").to_pylist(), key=lambda t: (t["conversation_id"], t["turn_index"])
    ):
        by_conv.setdefault(t["conversation_id"], []).append(t)
    te = pq.read_table(cfg.run_path / "emotions" / "turn_emotions.parquet").to_pylist()
    probs = {(r["conversation_id"], r["turn_index"]): np.array(r["probs"], np.float32) for r in te}
    samples = read_table(cfg.run_path, "samples", "test").to_pylist()
    assert [s["sample_id"] for s in samples] == list(split.sample_ids)
    dialogues, emotions = [], []
    for s in samples:
        ctx = by_conv[s["conversation_id"]][: s["turn_index"]]
        dialogues.append([{"role": x["role"], "text": x["raw_text"]} for x in ctx])
        emotions.append(
            [probs.get((x["conversation_id"], x["turn_index"])) if x["role"] == "user" else None for x in ctx]
        )
    assert len(dialogues) > 20 and any("@" in t["text"] for d in dialogues for t in d)
    _, served = p.inputs(dialogues, emotions)
    return served, batchers["test"].batch(np.arange(len(split))), split


def loved(title: str) -> tuple[list[dict], list]:
    """A short dialogue in which the user loved `title` (a happy last turn), and its per-turn emotion input."""
    from ecr_ray.config import EMOTIONS

    happy = np.zeros(len(EMOTIONS), np.float32)
    happy[EMOTIONS.index("happy")] = 0.8
    dialogue = [
        {"role": "user", "text": "Hi, I want a movie for tonight."},
        {"role": "recommender", "text": f"Have you seen {title}?"},
        {"role": "user", "text": "Yes, I loved it!"},
    ]
    return dialogue, [None, None, happy]
