"""Recommendation samples → tensors: the context as the backbone reads it (`light`: cached per-turn sentence
embeddings; `unicrs`: token ids for the text encoder and the PLM, with and without the response), context entities
with their emotions, the sparse global co-occurrence matrix P(e_i | e_j), feedback weights.

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
from ..data.tables import SAMPLES_SCHEMA, load_dataset_kg, read_table
from ..emotion.data import load_seed_rows, match_seeds, seed_path
from ..emotion.links import TURN_EMOTIONS_SCHEMA, link_entity_emotions
from ..hub import device, dtype, resolve
from ..prompts import turn_line
from .layers import ROLE
from .model import TextEncoder

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

    rc = cfg.recommender
    on = device(rc.device)
    dt = dtype(rc.dtype, on)
    key = [rc.text_encoder, rc.max_context_tokens, texts] + ([str(dt)] if str(dt) != "torch.float32" else [])
    h = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    path = cache_dir(cfg) / f"turns-{h}.npy"
    if path.exists():
        return np.load(path).astype(np.float32), path

    emb = TextEncoder(rc.text_encoder, rc.max_context_tokens, dt, on, cfg.offline).encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb.astype(np.float16))  # half the disk; precision is plenty for a frozen feature
    tmp.rename(path)
    return emb, path


# ----------------------------------------------------------------------------- context token ids (backbone unicrs)


class ContextTokens:
    """A dialogue's context as the token ids backbone `unicrs` reads (UniCRS's data prep): every turn as `turn_line`
    writes it; for the text encoder [CLS] + the turns each followed by [SEP], for the PLM the turns each followed by
    EOS; the most recent `max_tokens` of each kept (cut from the left). Encoder rows are right-padded (bidirectional,
    absolute positions: padding on the right leaves every real token's position alone), PLM rows left-padded (the
    last position is the last token); padding -1. Data prep and serving both build their ids with this class."""

    def __init__(self, text_encoder: str, plm: str, max_tokens: int, offline: bool = False):
        from transformers import AutoTokenizer

        self.enc = AutoTokenizer.from_pretrained(resolve(text_encoder, offline))
        self.plm = AutoTokenizer.from_pretrained(resolve(plm, offline))
        self.max_tokens = max_tokens
        self.cls = _first(self.enc.cls_token_id, self.enc.bos_token_id)
        self.sep = _first(self.enc.sep_token_id, self.enc.eos_token_id)
        self.eos = self.plm.eos_token_id
        if None in (self.cls, self.sep, self.eos):
            raise ValueError(
                f"recommender.text_encoder {text_encoder!r} needs a CLS/BOS and a SEP/EOS token, recommender.plm "
                f"{plm!r} an EOS token"
            )

    def turns(self, lines: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Each turn line's ids for the encoder and for the PLM (at most the last `max_tokens` of a turn: no more can
        be kept)."""
        if not lines:
            return [], []
        n = self.max_tokens
        enc = self.enc(lines, add_special_tokens=False, verbose=False)["input_ids"]
        plm = self.plm(lines, add_special_tokens=False, verbose=False)["input_ids"]
        return [t[-n:] for t in enc], [t[-n:] for t in plm]

    def context(self, enc_turns: list[list[int]], plm_turns: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """One context from its turns' ids (oldest first): the encoder row and the PLM row, each `max_tokens` wide."""
        n = self.max_tokens
        enc = [self.cls] + [t for turn in enc_turns for t in (*turn, self.sep)][-(n - 1) :]
        plm = [t for turn in plm_turns for t in (*turn, self.eos)][-n:]
        e, p = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
        e[: len(enc)] = enc
        p[n - len(plm) :] = plm
        return e, p


def _first(*ids):
    return next((i for i in ids if i is not None), None)


def token_batch(enc: np.ndarray, plm: np.ndarray) -> dict[str, torch.Tensor]:
    """[B, N] encoder and PLM rows → tensors cut to the batch's longest context (the padding only, from the right of
    the encoder rows and the left of the PLM rows)."""
    e = max(1, int((enc >= 0).sum(1).max(initial=0)))
    p = max(1, int((plm >= 0).sum(1).max(initial=0)))
    return {
        "enc_ids": torch.as_tensor(enc[:, :e], dtype=torch.long),
        "plm_ids": torch.as_tensor(plm[:, plm.shape[1] - p :], dtype=torch.long),
    }


# ----------------------------------------------------------------------------- entity emotions


def seed_turn_emotions(cfg: Config, turns: pa.Table, embeddings: np.ndarray) -> pa.Table:
    """The documented fallback: seed LLM labels (+ a probe for unlabelled user turns) → turn_emotions rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

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
    ent_age: np.ndarray  # [n, L] turns between each entity's latest mention and the target turn (0 = the turn before)
    ent_role: np.ndarray  # [n, L] who made that mention: 0 user, 1 recommender (-1 padding)
    repeat: np.ndarray  # [n] the target movie was named (@id) in an earlier turn: not in protocol `new`
    # backbone unicrs (ContextTokens): [n, max_context_tokens] context ids (prompt pre-training samples: the context
    # with the response turn appended)
    enc_ids: np.ndarray | None = None
    plm_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.target)

    def save(self, path: Path) -> None:
        np.savez(path, **{k: v for k, v in self.__dict__.items() if v is not None})

    @classmethod
    def load(cls, path: Path) -> Split:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in z.files})


class Mentions:
    """Who named what, turn by turn, in every dialogue of the turns table: each turn's entities as the samples list
    them (its `@id` movies that are KG items, then the linked entities) and its `@id` movie ids."""

    def __init__(self, turns: pa.Table):
        self.by_turn: dict[tuple[str, int], tuple[int, list[int], list[str]]] = {}
        self.by_entity: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        cols = ("conversation_id", "turn_index", "role", "movie_entities", "entities", "movie_ids")
        for cid, ti, role, movies, linked, mids in zip(*(turns[c].to_pylist() for c in cols)):
            ents = list(dict.fromkeys([e for e in movies if e >= 0] + list(linked)))
            r = ROLE[role]
            self.by_turn[(cid, int(ti))] = (r, ents, list(mids))
            for e in ents:
                self.by_entity[(cid, e)].append((int(ti), r))
        for v in self.by_entity.values():
            v.sort()

    def latest(self, cid: str, entity: int, before: int) -> tuple[int, int] | None:
        """(turn index, role) of the entity's latest mention before turn `before`."""
        seen = [m for m in self.by_entity.get((cid, entity), ()) if m[0] < before]
        return seen[-1] if seen else None

    def named_before(self, cid: str, movie_id: str, before: int) -> bool:
        """The movie's `@id` is in a turn before `before` (Kostric & Balog's definition of a repeated target)."""
        return any(movie_id in self.by_turn[(cid, j)][2] for j in range(before) if (cid, j) in self.by_turn)


def mention_features(ages_roles: list[tuple[int, int] | None], t: int) -> tuple[list[int], list[int]]:
    """Each context entity's (age, role) at target turn `t` from its latest mention (turn, role): age = turns between
    that mention and `t` (0 = the turn right before; the copy head caps it at MAX_AGE); -1 where no mention is
    known."""
    ages = [t - 1 - m[0] if m else -1 for m in ages_roles]
    roles = [m[1] if m else -1 for m in ages_roles]
    return ages, roles


def build_split(
    samples: pa.Table,
    turn_row: dict[tuple[str, int], int],
    emotions: dict,
    item_index: dict[int, int] | None,
    cfg: Config,
    mentions: Mentions,
    tokens: tuple[ContextTokens, list, list] | None = None,
) -> Split:
    """One split's arrays; `tokens` = (ContextTokens, every turn's encoder ids, PLM ids) in `turn_row` order adds the
    context token ids of backbone unicrs. `item_index` None: prompt pre-training samples (`pretrain_samples`): targets
    are entity ids, no weights, and the context tokens end with the response turn."""
    rc = cfg.recommender
    K, L = rc.max_context_turns, rc.max_context_entities
    n = samples.num_rows
    pretrain = item_index is None
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
        np.full((n, L), -1, np.int16),
        np.full((n, L), -1, np.int8),
        np.zeros(n, bool),
    )
    if tokens is not None:
        N = rc.max_context_tokens
        out.enc_ids, out.plm_ids = (np.zeros((n, N), np.int32) for _ in range(2))
    fw = rc.feedback_weights
    cols = [
        "conversation_id",
        "turn_index",
        "context_entities",
        "target_movie_id",
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
        ages, roles = mention_features([mentions.latest(cid, e, t) for e in ents], t)
        out.ent_age[i, L - len(ents) :] = ages
        out.ent_role[i, L - len(ents) :] = roles
        for k, e in enumerate(ents, start=L - len(ents)):
            before = [x for x in emotions.get((cid, e), ()) if x[0] < t]
            if before:  # the entity's most recent mention before the target turn
                _, ids, ps = before[-1]
                out.emo_ids[i, k, : len(ids)] = ids
                out.emo_probs[i, k, : len(ps)] = ps
        if pretrain:
            out.target[i] = s["target_item"]
        elif s["target_item"] not in item_index:
            raise DataError(
                Path("tables/samples.parquet"),
                None,
                "target_item",
                f"sample {s['conversation_id']}-{t}: target {s['target_item']} is not a KG item",
            )
        else:
            out.target[i] = item_index[s["target_item"]]
            out.weight[i] = fw[s["feedback"]] if rc.reweight else 1.0
            out.repeat[i] = mentions.named_before(cid, s["target_movie_id"], t)
        out.liked[i] = s["liked"]
        out.in_context[i] = s["target_in_context"]
        if tokens is not None:
            ct, enc, plm = tokens
            # the whole dialogue so far (pre-training: and the response turn); ContextTokens cuts it
            ctx = [turn_row[(cid, j)] for j in range(t + 1 if pretrain else t)]
            out.enc_ids[i], out.plm_ids[i] = ct.context([enc[r] for r in ctx], [plm[r] for r in ctx])
    return out


def pretrain_samples(turns: pa.Table, mentions: Mentions) -> pa.Table:
    """UniCRS's prompt pre-training samples (its `data/redial/process.py` + `dataset_pre.py`): every turn, of either
    role, that names at least one entity gives one sample per entity it names (movies, genres, people: every entity,
    not only items), with the entities of the turns before it as the context entities; the context text is the
    dialogue up to and including that turn. In the samples table's columns (target_item = the entity id; liked 2,
    feedback not_said: pre-training has no feedback weights)."""
    rows, conv = [], None
    seen: dict[int, None] = {}
    cols = ("conversation_id", "turn_index", "split")
    for cid, t, split in sorted(zip(*(turns[c].to_pylist() for c in cols)), key=lambda x: (x[0], x[1])):
        t = int(t)
        if cid != conv:
            conv, seen = cid, {}
        _, named, _ = mentions.by_turn[(cid, t)]
        for e in named:
            rows.append(
                {
                    "sample_id": f"{cid}-{t}-e{e}",
                    "conversation_id": cid,
                    "split": split,
                    "turn_index": t,
                    "context": [],
                    "context_entities": list(seen),
                    "target_movie_id": "",
                    "target_item": e,
                    "liked": 2,
                    "feedback": "not_said",
                    "target_in_context": e in seen,
                    "response": "",
                }
            )
        for e in named:
            seen.setdefault(e, None)
    return pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)


def item_counts(turns: pa.Table, mentions: Mentions, item_index: dict[int, int]) -> np.ndarray:
    """[n_items] how many train-split turns name each item (the popularity baseline's scores)."""
    counts = np.zeros(len(item_index), np.int64)
    for cid, t, split in zip(*(turns[c].to_pylist() for c in ("conversation_id", "turn_index", "split"))):
        if split == "train":
            for e in mentions.by_turn[(cid, int(t))][1]:
                if e in item_index:
                    counts[item_index[e]] += 1
    return counts


def prepare(cfg: Config, out_dir: Path) -> dict:
    """Everything a training worker needs, written to `out_dir`: train/valid/test .npz (and pretrain_train/valid.npz
    with `pretrain_epochs`), turn embeddings, co-occurrence matrix (variants with G), KG edges, item ids and their
    train mention counts. Returns a summary for the manifest."""
    run = cfg.run_path
    rc = cfg.recommender
    turns = read_table(run, "turns")
    samples = read_table(run, "samples")
    entities = read_table(run, "entities")
    # Sentence embeddings of every turn: the context of `light`, and the input of the seed labels' probe.
    need_emb = rc.backbone == "light" or (rc.local_emotions and rc.emotions_source == "seed")
    emb, emb_path = turn_embeddings(cfg, turns) if need_emb else (None, None)
    tokens = None
    if rc.backbone == "unicrs":
        ct = ContextTokens(rc.text_encoder, rc.plm, rc.max_context_tokens, cfg.offline)
        lines = [turn_line(r, t) for r, t in zip(turns["role"].to_pylist(), turns["text"].to_pylist())]
        tokens = (ct, *ct.turns(lines))
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
    mentions = Mentions(turns)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("pretrain_*.npz"):
        old.unlink()
    counts = {}
    for split in ("train", "valid", "test"):
        s = samples.filter(pc.equal(samples["split"], split))
        if split == "train" and cfg.recommender.max_train_samples:
            s = s.slice(0, cfg.recommender.max_train_samples)
        arr = build_split(s, turn_row, emo, item_index, cfg, mentions, tokens)
        arr.save(out_dir / f"{split}.npz")
        counts[split] = {
            "samples": len(arr),
            "with_emotions": int((arr.emo_ids[:, :, 0] >= 0).any(1).sum()),
            "target_named_before": int(arr.repeat.sum()),
        }
    if rc.pretrain_epochs:
        pre = pretrain_samples(turns, mentions)
        for split in ("train", "valid"):
            s = pre.filter(pc.equal(pre["split"], split))
            if split == "train" and cfg.recommender.max_train_samples:
                s = s.slice(0, cfg.recommender.max_train_samples)
            build_split(s, turn_row, emo, None, cfg, mentions, tokens).save(out_dir / f"pretrain_{split}.npz")
            counts[f"pretrain_{split}"] = {"samples": s.num_rows}
    n_ent = entities.num_rows
    if cfg.recommender.global_emotions:
        train_convs = set(turns.filter(pc.equal(turns["split"], "train"))["conversation_id"].to_pylist())
        P = cooccurrence_matrix(links, train_convs, n_ent, min(cfg.emotion.max_emotions_per_entity, MAX_EMO))
        sp.save_npz(out_dir / "cooccurrence.npz", P)
        counts["cooccurrence_nnz"] = int(P.nnz)
    kg = load_dataset_kg(cfg)  # the same KG the tables came from; UniCRS edges (both directions + self loops)
    edge_index, edge_type = kg.edge_index_and_type()
    np.savez(
        out_dir / "graph.npz",
        edge_index=edge_index.numpy(),
        edge_type=edge_type.numpy(),
        item_ids=item_ids,
        item_counts=item_counts(turns, mentions, item_index),
        num_entities=n_ent,
        num_relations=kg.num_relations,
    )
    light = rc.backbone == "light"
    summary = {
        "backbone": rc.backbone,
        "emotions_source": source,
        "counts": counts,
        "text_dim": int(emb.shape[1]) if light else None,  # unicrs: the encoder's width, from the encoder
        "turn_embeddings": str(emb_path) if light else None,
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


def load_batchers(prep_dir: Path, splits=("train", "valid"), pretrain: bool = False) -> tuple[dict, dict[str, Batcher]]:
    """The prepared files and a Batcher per split; `pretrain`: the prompt pre-training samples (`pretrain_samples`)."""
    prep = load_prepared(prep_dir)
    path = prep["meta"].get("turn_embeddings")
    emb = np.load(path).astype(np.float32) if path else None
    out = {}
    for s in splits:
        f = Path(prep_dir) / (f"pretrain_{s}.npz" if pretrain else f"{s}.npz")
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: prepare the recommender's tensors first (`prepare`)")
        out[s] = Batcher(Split.load(f), emb, prep["cooc"])
    return prep, out


class Batcher:
    """Split arrays + the context (turn embeddings, or token ids) + co-occurrence matrix → torch batches (the global
    rows sliced sparsely)."""

    def __init__(self, split: Split, turn_emb: np.ndarray | None, cooc: sp.csr_matrix | None):
        self.s, self.turn_emb, self.cooc = split, turn_emb, cooc

    def __len__(self) -> int:
        return len(self.s)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        s = self.s
        out = {
            "entities": torch.as_tensor(s.entities[idx]),
            "emo_ids": torch.as_tensor(s.emo_ids[idx]),
            "emo_probs": torch.as_tensor(s.emo_probs[idx]),
            "ent_age": torch.as_tensor(s.ent_age[idx], dtype=torch.long),
            "ent_role": torch.as_tensor(s.ent_role[idx], dtype=torch.long),
            "target": torch.as_tensor(s.target[idx]),
            "weight": torch.as_tensor(s.weight[idx]),
        }
        if s.enc_ids is not None:
            out.update(token_batch(s.enc_ids[idx], s.plm_ids[idx]))
        else:
            turns = s.turns[idx]
            emb = self.turn_emb[turns.clip(min=0)] * (turns >= 0)[..., None]
            out["turn_emb"] = torch.as_tensor(emb, dtype=torch.float32)
            out["turn_mask"] = torch.as_tensor(turns >= 0)
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
