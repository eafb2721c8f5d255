"""Recommendation samples → tensors: cached context-turn embeddings, context entities with their emotions, the
sparse global co-occurrence matrix P(e_i | e_j), feedback weights.

Inputs (all under run_dir): tables/{turns,samples,entities,kg_triples}.parquet and the entity-emotion links
emotions/entity_emotions.parquet of the emotion classifier (`emotions_source: file`, the default). Asked for by name,
`emotions_source: seed` builds the links from the LLM seed labels shipped with the data
(data_dir/emotions/redial_llm_labels.jsonl, matched to turns by message ids): labelled turns get their labels
(probabilities 1.0, or 0.6/0.4 for two labels, strongest first), every other user turn gets the probabilities of a
one-vs-rest logistic-regression probe fitted on the labelled turns' cached embeddings (the seed labels cover ~14% of
train user turns and no test turn, so labels alone would leave test entities emotionless).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from ..config import EMOTIONS, Config
from ..data.errors import DataError
from ..emotion.links import TURN_EMOTIONS_SCHEMA, link_entity_emotions
from ..prompts import turn_line

EMO_INDEX = {e: i for i, e in enumerate(EMOTIONS)}
MAX_EMO = 3  # slots per entity (emotion.max_emotions_per_entity is capped to this at link time)


# ----------------------------------------------------------------------------- context text embeddings


def cache_dir(cfg: Config) -> Path:
    return (
        Path(cfg.recommender.cache_dir).expanduser().resolve()
        if cfg.recommender.cache_dir
        else cfg.run_path / "recommender" / "cache"
    )


def turn_embeddings(cfg: Config, turns: pa.Table) -> tuple[np.ndarray, Path]:
    """[n_turns, dim] float32 embeddings of `turns` rows (in table order), cached by content hash; and the cache
    file."""
    texts = [turn_line(r, t) for r, t in zip(turns["role"].to_pylist(), turns["text"].to_pylist())]
    from ..hub import device, dtype

    rc = cfg.recommender
    on = device(rc.device)
    dt = dtype(rc.dtype, on)
    key = [rc.text_encoder, rc.max_context_tokens, texts] + ([str(dt)] if str(dt) != "torch.float32" else [])
    h = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    path = cache_dir(cfg) / f"turns-{h}.npy"
    if path.exists():
        return np.load(path).astype(np.float32), path
    from .model import TextEncoder

    emb = TextEncoder(rc.text_encoder, rc.max_context_tokens, dt, on, cfg.offline).encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb.astype(np.float16))  # half the disk; precision is plenty for a frozen feature
    tmp.rename(path)
    return emb, path


# ----------------------------------------------------------------------------- entity emotions


def seed_turn_emotions(cfg: Config, turns: pa.Table, embeddings: np.ndarray) -> pa.Table:
    """The documented fallback: seed LLM labels (+ a probe for unlabelled user turns) → turn_emotions rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from ..emotion.data import load_seed_rows, match_seeds, seed_path

    path = seed_path(cfg)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no seed emotion labels (recommender.emotions_source seed); run the emotion stage to write "
            f"{cfg.run_path / 'emotions' / 'entity_emotions.parquet'} and use emotions_source file, or train variant "
            "baseline"
        )
    rows = turns.select(["conversation_id", "turn_index", "role", "message_ids", "split"]).to_pylist()
    row_of = {(r["conversation_id"], r["turn_index"]): i for i, r in enumerate(rows)}
    matched, _ = match_seeds(turns, load_seed_rows(cfg, path))  # turns of conversations not loaded stay unmatched
    labelled = {row_of[(m["conversation_id"], m["turn_index"])]: list(m["labels"])[:MAX_EMO] for m in matched}
    probs = np.zeros((len(rows), len(EMOTIONS)), dtype=np.float32)
    for i, labels in labelled.items():
        for l, p in zip(labels, (1.0,) if len(labels) == 1 else (0.6, 0.4, 0.2)):
            probs[i, EMO_INDEX[l]] = p
    user = np.array([r["role"] == "user" for r in rows])
    unl = np.flatnonzero(user & ~np.isin(np.arange(len(rows)), list(labelled)))
    lab = np.array(sorted(labelled), dtype=np.int64)
    if len(unl) and len(lab) >= 20:
        y = (probs[lab] > 0).astype(int)
        keep = y.sum(0) > 0  # labels the seed never uses get probability 0
        probe = OneVsRestClassifier(LogisticRegression(max_iter=300, C=1.0))
        probe.fit(embeddings[lab], y[:, keep])
        probs[np.ix_(unl, np.flatnonzero(keep))] = probe.predict_proba(embeddings[unl]).astype(np.float32)
    th = cfg.emotion.threshold
    out = []
    for i, r in enumerate(rows):
        if not user[i] or not probs[i].any():
            continue
        order = np.argsort(-probs[i])
        kept = [EMOTIONS[j] for j in order if probs[i, j] > th] or [EMOTIONS[order[0]]]
        out.append(
            {
                "conversation_id": r["conversation_id"],
                "turn_index": r["turn_index"],
                "role": "user",
                "probs": probs[i].tolist(),
                "labels": kept,
                "source": "seed" if i in labelled else "classifier",
            }
        )
    return pa.Table.from_pylist(out, schema=TURN_EMOTIONS_SCHEMA)


def require_emotions(cfg: Config) -> None:
    """Fail before any work when this config reads the emotion stage's links (`emotions_source: file`, a variant
    with local emotions) and the stage has not run."""
    path = cfg.run_path / "emotions" / "entity_emotions.parquet"
    if cfg.recommender.local_emotions and cfg.recommender.emotions_source == "file" and not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run the emotion stage first (`ecr-ray train_emotion`), or ask for the LLM seed "
            f"labels by name (--recommender.emotions_source seed), or train variant baseline"
        )


def load_entity_emotions(cfg: Config, turns: pa.Table, embeddings: np.ndarray) -> tuple[pa.Table | None, str]:
    """The entity-emotion links this run uses and where they came from (`file` | `seed` | `none`)."""
    src = cfg.recommender.emotions_source
    if src == "none":
        return None, "none"
    if src == "file":
        require_emotions(cfg)
        return pq.read_table(cfg.run_path / "emotions" / "entity_emotions.parquet"), "file"

    turn_emotions = seed_turn_emotions(cfg, turns, embeddings)
    links = link_entity_emotions(
        turns, turn_emotions, cfg.emotion.threshold, min(cfg.emotion.max_emotions_per_entity, MAX_EMO)
    )
    return links, "seed"


def emotion_index(links: pa.Table | None) -> dict[tuple[str, int], list[tuple[int, list[int], list[float]]]]:
    """(conversation, entity) → [(turn_index, emotion ids, probs)] sorted by turn."""
    out: dict = defaultdict(list)
    if links is None:
        return out
    cols = [links[c].to_pylist() for c in ("conversation_id", "turn_index", "entity_id", "emotions", "probs")]
    for cid, ti, eid, emos, ps in zip(*cols):
        try:
            ids = [EMO_INDEX[e] for e in emos[:MAX_EMO]]
        except KeyError as e:
            raise DataError(
                Path("emotions/entity_emotions.parquet"),
                None,
                "emotions",
                f"unknown emotion {e} (conversation {cid}, turn {ti}); known: {EMOTIONS}",
            ) from None
        out[(cid, int(eid))].append((int(ti), ids, [float(p) for p in ps[:MAX_EMO]]))
    for v in out.values():
        v.sort(key=lambda x: x[0])
    return out


# ----------------------------------------------------------------------------- global co-occurrence (Eq. 5)


def cooccurrence_matrix(links: pa.Table, conversations: set[str], num_entities: int, top_n: int = 3) -> sp.csr_matrix:
    """P(e_i | e_j) over `conversations`: count ordered pairs (earlier e_j, later e_i), e_i != e_j, whose top-n
    emotions intersect; row-normalise. Sparse end to end: memory grows with the pairs seen, not N²."""
    rows, cols = [], []
    by_conv: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for cid, ti, eid, emos in zip(
        *(links[c].to_pylist() for c in ("conversation_id", "turn_index", "entity_id", "emotions"))
    ):
        if cid in conversations:
            bits = 0
            for e in emos[:top_n]:
                bits |= 1 << EMO_INDEX[e]
            by_conv[cid].append((int(ti), int(eid), bits))
    for mentions in by_conv.values():
        mentions.sort(key=lambda x: x[0])  # stable: mention order within a turn is kept
        ent = np.array([m[1] for m in mentions], dtype=np.int64)
        bits = np.array([m[2] for m in mentions], dtype=np.int64)
        a, b = np.triu_indices(len(ent), k=1)  # a earlier than b
        ok = ((bits[a] & bits[b]) != 0) & (ent[a] != ent[b])
        rows.append(ent[a[ok]])
        cols.append(ent[b[ok]])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    m = sp.coo_matrix((np.ones(len(r), np.float32), (r, c)), shape=(num_entities, num_entities)).tocsr()
    m.sum_duplicates()
    deg = np.asarray(m.sum(1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return (sp.diags(inv.astype(np.float32)) @ m).tocsr()


# ----------------------------------------------------------------------------- samples → arrays


@dataclass
class Split:
    """One split as fixed-width arrays (padding = -1)."""

    turns: np.ndarray  # [n, K] rows of the turn-embedding matrix, most recent last
    entities: np.ndarray  # [n, L] entity ids, most recent last
    emo_ids: np.ndarray  # [n, L, 3] emotion label ids
    emo_probs: np.ndarray  # [n, L, 3]
    target: np.ndarray  # [n] index into the item list
    liked: np.ndarray  # [n] 0 dislike / 1 like / 2 not said
    weight: np.ndarray  # [n] loss weight (Eq. 7)
    in_context: np.ndarray  # [n] target already mentioned in the context
    sample_ids: np.ndarray  # [n] str

    def __len__(self) -> int:
        return len(self.target)

    def save(self, path: Path) -> None:
        np.savez(path, **self.__dict__)

    @classmethod
    def load(cls, path: Path) -> Split:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in z.files})


def build_split(
    samples: pa.Table, turn_row: dict[tuple[str, int], int], emotions: dict, item_index: dict[int, int], cfg: Config
) -> Split:
    rc = cfg.recommender
    K, L = rc.max_context_turns, rc.max_context_entities
    n = samples.num_rows
    out = Split(
        np.full((n, K), -1, np.int64),
        np.full((n, L), -1, np.int64),
        np.full((n, L, MAX_EMO), -1, np.int64),
        np.zeros((n, L, MAX_EMO), np.float32),
        np.zeros(n, np.int64),
        np.zeros(n, np.int8),
        np.ones(n, np.float32),
        np.zeros(n, bool),
        np.array(samples["sample_id"].to_pylist(), dtype=str),
    )
    fw = rc.feedback_weights
    cols = [
        "conversation_id",
        "turn_index",
        "context_entities",
        "target_item",
        "liked",
        "feedback",
        "target_in_context",
    ]
    for i, s in enumerate(samples.select(cols).to_pylist()):
        cid, t = s["conversation_id"], s["turn_index"]
        rows = [turn_row[(cid, j)] for j in range(max(0, t - K), t)]
        out.turns[i, K - len(rows) :] = rows
        ents = s["context_entities"][-L:]
        out.entities[i, L - len(ents) :] = ents
        for k, e in enumerate(ents, start=L - len(ents)):
            before = [x for x in emotions.get((cid, e), ()) if x[0] < t]
            if before:  # the entity's most recent mention before the target turn
                _, ids, ps = before[-1]
                out.emo_ids[i, k, : len(ids)] = ids
                out.emo_probs[i, k, : len(ps)] = ps
        if s["target_item"] not in item_index:
            raise DataError(
                Path("tables/samples.parquet"),
                None,
                "target_item",
                f"sample {s['conversation_id']}-{t}: target {s['target_item']} is not a KG item",
            )
        out.target[i] = item_index[s["target_item"]]
        out.liked[i] = s["liked"]
        out.weight[i] = fw[s["feedback"]] if rc.reweight else 1.0
        out.in_context[i] = s["target_in_context"]
    return out


def prepare(cfg: Config, out_dir: Path) -> dict:
    """Everything a training worker needs, written to `out_dir`: train/valid/test .npz, turn embeddings,
    co-occurrence matrix (variants with G), KG edges, item ids. Returns a summary for the manifest."""
    from ..data.tables import read_table

    run = cfg.run_path
    turns = read_table(run, "turns")
    samples = read_table(run, "samples")
    entities = read_table(run, "entities")
    emb, emb_path = turn_embeddings(cfg, turns)
    # baseline (UniCRS) uses no emotions, so it trains even where no emotion stage has run.
    links, source = load_entity_emotions(cfg, turns, emb) if cfg.recommender.local_emotions else (None, "none")
    if cfg.recommender.local_emotions and links is None:
        raise FileNotFoundError(
            f"variant {cfg.recommender.variant} needs entity emotions "
            f"({cfg.run_path / 'emotions' / 'entity_emotions.parquet'} or the seed labels); "
            f"emotions_source={cfg.recommender.emotions_source}"
        )
    turn_row = {
        (c, int(t)): i
        for i, (c, t) in enumerate(zip(turns["conversation_id"].to_pylist(), turns["turn_index"].to_pylist()))
    }
    item_ids = np.array(
        [e for e, it in zip(entities["entity_id"].to_pylist(), entities["is_item"].to_pylist()) if it], dtype=np.int64
    )
    item_index = {int(e): i for i, e in enumerate(item_ids)}
    emo = emotion_index(links) if cfg.recommender.local_emotions else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "valid", "test"):
        s = samples.filter(pc.equal(samples["split"], split))
        if split == "train" and cfg.recommender.max_train_samples:
            s = s.slice(0, cfg.recommender.max_train_samples)
        arr = build_split(s, turn_row, emo, item_index, cfg)
        arr.save(out_dir / f"{split}.npz")
        counts[split] = {"samples": len(arr), "with_emotions": int((arr.emo_ids[:, :, 0] >= 0).any(1).sum())}
    n_ent = entities.num_rows
    if cfg.recommender.global_emotions:
        train_convs = set(turns.filter(pc.equal(turns["split"], "train"))["conversation_id"].to_pylist())
        P = cooccurrence_matrix(links, train_convs, n_ent, min(cfg.emotion.max_emotions_per_entity, MAX_EMO))
        sp.save_npz(out_dir / "cooccurrence.npz", P)
        counts["cooccurrence_nnz"] = int(P.nnz)
    from ..data.tables import load_dataset_kg

    kg = load_dataset_kg(cfg)  # the same KG the tables came from; UniCRS edges (both directions + self loops)
    edge_index, edge_type = kg.edge_index_and_type()
    np.savez(
        out_dir / "graph.npz",
        edge_index=edge_index.numpy(),
        edge_type=edge_type.numpy(),
        item_ids=item_ids,
        num_entities=n_ent,
        num_relations=kg.num_relations,
    )
    summary = {
        "emotions_source": source,
        "counts": counts,
        "text_dim": int(emb.shape[1]),
        "turn_embeddings": str(emb_path),
        "links": 0 if links is None else links.num_rows,
    }
    (out_dir / "prepared.json").write_text(json.dumps(summary, indent=2))
    return summary


# ----------------------------------------------------------------------------- prepared files → torch batches


def load_prepared(prep_dir: Path) -> dict[str, Any]:
    prep_dir = Path(prep_dir)
    meta = json.loads((prep_dir / "prepared.json").read_text())
    g = np.load(prep_dir / "graph.npz")
    cooc = sp.load_npz(prep_dir / "cooccurrence.npz") if (prep_dir / "cooccurrence.npz").exists() else None
    return {"meta": meta, "graph": {k: g[k] for k in g.files}, "cooc": cooc}


def load_batchers(prep_dir: Path, splits=("train", "valid")) -> tuple[dict, dict[str, Batcher]]:
    prep = load_prepared(prep_dir)
    emb = np.load(prep["meta"]["turn_embeddings"]).astype(np.float32)
    return prep, {s: Batcher(Split.load(Path(prep_dir) / f"{s}.npz"), emb, prep["cooc"]) for s in splits}


class Batcher:
    """Split arrays + turn embeddings + co-occurrence matrix → torch batches (the global rows sliced sparsely)."""

    def __init__(self, split: Split, turn_emb: np.ndarray, cooc: sp.csr_matrix | None):
        self.s, self.turn_emb, self.cooc = split, turn_emb, cooc

    def __len__(self) -> int:
        return len(self.s)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        s = self.s
        turns = s.turns[idx]
        emb = self.turn_emb[turns.clip(min=0)] * (turns >= 0)[..., None]
        out = {
            "entities": torch.as_tensor(s.entities[idx]),
            "emo_ids": torch.as_tensor(s.emo_ids[idx]),
            "emo_probs": torch.as_tensor(s.emo_probs[idx]),
            "turn_emb": torch.as_tensor(emb, dtype=torch.float32),
            "turn_mask": torch.as_tensor(turns >= 0),
            "target": torch.as_tensor(s.target[idx]),
            "weight": torch.as_tensor(s.weight[idx]),
        }
        if self.cooc is not None:
            out["cooc"] = cooc_rows(self.cooc, s.entities[idx])
        return out


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return batch if torch.device(device).type == "cpu" else {k: v.to(device) for k, v in batch.items()}


def cooc_rows(P: sp.csr_matrix, entities: np.ndarray) -> torch.Tensor:
    """Rows of P for a [B, L] block of entity ids (-1 → empty row) as a sparse [B*L, N] torch tensor."""
    flat = entities.reshape(-1)
    rows = P[flat.clip(min=0)].tocoo()
    keep = flat[rows.row] >= 0
    idx = torch.as_tensor(np.stack([rows.row[keep], rows.col[keep]]), dtype=torch.long)
    return torch.sparse_coo_tensor(
        idx, torch.as_tensor(rows.data[keep], dtype=torch.float32), (len(flat), P.shape[1]), check_invariants=False
    ).coalesce()
