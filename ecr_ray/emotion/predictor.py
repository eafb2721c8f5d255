"""Inference with the trained emotion classifier: `EmotionPredictor` (Serve's EmotionDetector and evaluation) and
the Ray Data labelling of every user turn (`label_turns`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..config import EMOTIONS, Config
from ..hub import device as resolve_device
from ..hub import dtype as resolve_dtype
from .data import NUM_EMOTIONS, keep_labels
from .links import TURN_EMOTIONS_SCHEMA, turn_entities
from .model import load_classifier, model_dir


class EmotionPredictor:
    """`EmotionPredictor.load(cfg).predict(texts) -> np.ndarray [n, 9]` (softmax, EMOTIONS order)."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64):
        self.model, self.tok = model.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def from_dir(cls, path: str | Path, batch_size: int = 64, dtype=None, device: str = "cpu") -> EmotionPredictor:
        model, tok, meta = load_classifier(path, dtype)
        return cls(model.to(device), tok, meta.get("max_length", 128), batch_size)

    @classmethod
    def load(cls, cfg: Config, dtype=None, device: str = "cpu") -> EmotionPredictor:
        return cls.from_dir(model_dir(cfg), batch_size=cfg.emotion.label_batch_size, dtype=dtype, device=device)

    @torch.no_grad()
    def predict(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), NUM_EMOTIONS), dtype=np.float32)
        order = np.argsort([len(t or "") for t in texts], kind="stable")  # similar lengths per batch: little padding
        for i in range(0, len(texts), self.batch_size):
            idx = order[i : i + self.batch_size]
            enc = self.tok(
                [texts[j] or "" for j in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(enc["input_ids"], enc["attention_mask"])
            out[idx] = torch.softmax(logits.float(), -1).cpu().numpy()
        return out


class BatchLabeler:
    """Ray Data `map_batches` callable (one per actor): adds a `probs` column to batches with a `text` column.
    `device` / `dtype` are the config's names, resolved here, where the actor's GPU (if any) is visible."""

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0, device: str = "auto", dtype: str = "auto"):
        if threads:
            torch.set_num_threads(threads)
        on = resolve_device(device)
        self.predictor = EmotionPredictor.from_dir(path, batch_size, resolve_dtype(dtype, on), on)

    def __call__(self, batch: dict) -> dict:
        probs = self.predictor.predict([str(t) for t in batch["text"]])
        return {**batch, "probs": list(probs)}


def label_turns(cfg: Config, turns: pa.Table, model_path: Path) -> pa.Table:
    """Every user turn of every split → probabilities and kept labels, with Ray Data over an actor pool of
    `emotion.label_resources`."""
    import ray

    users = turns.filter(pc.equal(turns["role"], "user"))
    has_ent = [bool(turn_entities(r)) for r in users.select(["movie_entities", "entities"]).to_pylist()]
    base = pa.table({"row": pa.array(range(len(users)), pa.int64()), "text": users["text"]})
    # Blocks of similar-length turns: each batch pads to its longest turn, so sorting saves most of the padding.
    base = base.take(pa.array(np.argsort(pc.utf8_length(base["text"]).to_numpy(), kind="stable")))
    res = cfg.emotion.label_resources
    step = cfg.emotion.label_batch_size  # one block per batch, so every actor of the pool gets work
    blocks = [base.slice(i, step) for i in range(0, len(base), step)] or [base]
    ds = ray.data.from_arrow(blocks).map_batches(
        BatchLabeler,
        fn_constructor_kwargs={
            "path": str(model_path),
            "threads": res.threads,
            "device": cfg.emotion.device,
            "dtype": cfg.emotion.dtype,
        },
        batch_size=step,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=res.workers),
        num_cpus=res.cpus,
        num_gpus=res.gpus,
    )
    probs = np.zeros((len(users), len(EMOTIONS)), dtype=np.float32)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        probs[batch["row"]] = np.stack(batch["probs"])
    labels = [keep_labels(p, cfg.emotion.threshold, fallback_top=h) for p, h in zip(probs, has_ent)]
    return pa.table(
        {
            "conversation_id": users["conversation_id"],
            "turn_index": users["turn_index"],
            "role": users["role"],
            "probs": pa.array([p.tolist() for p in probs], pa.list_(pa.float32())),
            "labels": pa.array(labels, pa.list_(pa.string())),
            "source": pa.array(["classifier"] * len(users)),
        },
        schema=TURN_EMOTIONS_SCHEMA,
    )


def apply_seed_override(table: pa.Table, seed_rows: list[dict]) -> pa.Table:
    """Seed-labelled turns keep their seed labels (probs stay the classifier's); source `seed`."""
    seeds = {(r["conversation_id"], r["turn_index"]): r["labels"] for r in seed_rows}
    rows = table.to_pylist()
    for r in rows:
        s = seeds.get((r["conversation_id"], r["turn_index"]))
        if s is not None:
            r["labels"], r["source"] = list(s), "seed"
    return pa.Table.from_pylist(rows, schema=TURN_EMOTIONS_SCHEMA)
