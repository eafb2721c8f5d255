"""The emotion-aware item recommender (paper section 4.2) on a UniCRS-style backbone, and its inference API.

    entity reps   E = RGCN(node embeddings) + residual, then a residual MLP        (UniCRS KG encoder)
    local  (Eq. 3-4)  v_j = Σ_{i≤3} p_i · Emb[f_i];   ê_j = MLP([E_j ; v_j])
    global (Eq. 5)    g_j = Σ_i P(e_i | e_j) · E_i;    ĝ_j = MLP([g_j ; v_j])     (same fuse MLP, emotions duplicated)
    prompt (Eq. 6)    [learned prompt tokens ; ê_1..ê_L ; ĝ_1..ĝ_L ; turn states] → Transformer encoder
    scores            u = mean(prompt-token outputs) → u · E_items   (every item scored)
    loss   (Eq. 7)    mean_k m(f_k) · CE(scores_k, item_k)

Fusion (our choice, documented): UniCRS feeds the fused prompt to a frozen DialoGPT as prefix key/values and scores
entities with the LM's last hidden state. On CPU we replace the frozen LM with a small trainable Transformer over
the prompt sequence, and the token-level context with per-turn states of a frozen sentence encoder (all-MiniLM-L6-v2
by default), precomputed once and cached. Cross-entropy runs over item entities only (UniCRS trains over all
entities and restricts to items at evaluation; over items is the same ranking task with a smaller softmax).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..config import EMOTIONS, Config, RecommenderConfig
from .recommender_data import MAX_EMO, Split


class KGEncoder(nn.Module):
    """UniCRS's KG encoder: one RGCNConv (basis decomposition) + residual, then a residual MLP."""

    def __init__(self, num_entities: int, num_relations: int, dim: int, num_bases: int,
                 edge_index: torch.Tensor, edge_type: torch.Tensor):
        super().__init__()
        from torch_geometric.nn import RGCNConv  # not FastRGCNConv: ~20x slower and 4 GB on CPU

        self.node = nn.Embedding(num_entities, dim)
        nn.init.normal_(self.node.weight, std=dim ** -0.5)
        self.conv = RGCNConv(dim, dim, num_relations, num_bases=num_bases)
        self.mlp = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, dim))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_type", edge_type, persistent=False)

    def forward(self) -> torch.Tensor:
        x = self.node.weight
        h = self.conv(x, self.edge_index, self.edge_type) + x
        return h + self.mlp(h)


class EmotionFuse(nn.Module):
    """Eq. 3-4: v = Σ p_i · Emb[f_i] (not renormalised); fused = MLP([e ; v]) back to the entity width."""

    def __init__(self, dim: int, emotion_dim: int):
        super().__init__()
        self.emb = nn.Embedding(len(EMOTIONS) + 1, emotion_dim, padding_idx=len(EMOTIONS))  # last = no emotion
        self.mlp = nn.Sequential(nn.Linear(dim + emotion_dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def emotion(self, ids: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        ids = ids.masked_fill(ids < 0, len(EMOTIONS))
        return (self.emb(ids) * probs.unsqueeze(-1)).sum(-2)  # [B, L, 3, D] → [B, L, D]

    def forward(self, ent: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([ent, v], dim=-1))


class EmotionRecommender(nn.Module):
    def __init__(self, rc: RecommenderConfig, *, num_entities: int, num_relations: int, text_dim: int,
                 edge_index: torch.Tensor, edge_type: torch.Tensor, item_ids: torch.Tensor):
        super().__init__()
        d = rc.entity_dim
        self.local, self.glob = rc.local_emotions, rc.global_emotions
        self.kg = KGEncoder(num_entities, num_relations, d, rc.num_bases, edge_index, edge_type)
        self.fuse = EmotionFuse(d, rc.emotion_dim) if self.local else None
        self.text = nn.Sequential(nn.Linear(text_dim, d), nn.LayerNorm(d))
        self.prompt = nn.Parameter(torch.randn(rc.prompt_tokens, d) * d ** -0.5)
        self.turn_pos = nn.Embedding(rc.max_context_turns, d)
        self.segment = nn.Embedding(4, d)  # prompt / local entities / global entities / turns
        layer = nn.TransformerEncoderLayer(d, nhead=max(1, d // 32), dim_feedforward=2 * d, dropout=rc.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, rc.fusion_layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.item_bias = nn.Parameter(torch.zeros(len(item_ids)))
        self.register_buffer("item_ids", item_ids, persistent=False)

    def forward(self, batch: dict[str, torch.Tensor], entity_reps: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, n_items]. `entity_reps` may be passed in to reuse one KG pass (inference)."""
        E = self.kg() if entity_reps is None else entity_reps
        dt = E.dtype  # inputs follow the model's dtype (bf16 under DeepSpeed on GPUs)
        ent = batch["entities"]
        B, L = ent.shape
        ent_mask = ent >= 0
        e = E[ent.clamp(min=0)] * ent_mask.unsqueeze(-1)
        seq, masks = [self.prompt.expand(B, -1, -1) + self.segment.weight[0]], [ent_mask.new_ones(B, self.prompt.shape[0])]
        if self.local:
            v = self.fuse.emotion(batch["emo_ids"], batch["emo_probs"].to(dt))
            e = self.fuse(e, v)
        seq.append(e + self.segment.weight[1])
        masks.append(ent_mask)
        if self.glob:
            g = torch.sparse.mm(batch["cooc"], E.float()).to(dt).view(B, L, -1)  # Eq. 5: rows of P(·|e_j) · all reps
            seq.append(self.fuse(g, v) + self.segment.weight[2])
            masks.append(ent_mask)
        turns = batch["turn_emb"].to(dt)
        K = turns.shape[1]
        seq.append(self.text(turns) + self.turn_pos.weight[-K:] + self.segment.weight[3])
        masks.append(batch["turn_mask"])
        h = self.encoder(torch.cat(seq, 1), src_key_padding_mask=~torch.cat(masks, 1))
        u = self.out(h[:, : self.prompt.shape[0]].mean(1))
        return u @ E[self.item_ids].T + self.item_bias


def weighted_loss(scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Eq. 7: mean of w_k · CE_k."""
    return (F.cross_entropy(scores.float(), target, reduction="none") * weight).mean()


# ----------------------------------------------------------------------------- batches

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
        out = {"entities": torch.as_tensor(s.entities[idx]), "emo_ids": torch.as_tensor(s.emo_ids[idx]),
               "emo_probs": torch.as_tensor(s.emo_probs[idx]), "turn_emb": torch.as_tensor(emb, dtype=torch.float32),
               "turn_mask": torch.as_tensor(turns >= 0), "target": torch.as_tensor(s.target[idx]),
               "weight": torch.as_tensor(s.weight[idx])}
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
    return torch.sparse_coo_tensor(idx, torch.as_tensor(rows.data[keep], dtype=torch.float32),
                                   (len(flat), P.shape[1]), check_invariants=False).coalesce()


# ----------------------------------------------------------------------------- building from prepared files

def load_prepared(prep_dir: Path) -> dict[str, Any]:
    prep_dir = Path(prep_dir)
    meta = json.loads((prep_dir / "prepared.json").read_text())
    g = np.load(prep_dir / "graph.npz")
    cooc = sp.load_npz(prep_dir / "cooccurrence.npz") if (prep_dir / "cooccurrence.npz").exists() else None
    return {"meta": meta, "graph": {k: g[k] for k in g.files}, "cooc": cooc}


def build_model(rc: RecommenderConfig, graph: dict[str, np.ndarray], text_dim: int) -> EmotionRecommender:
    return EmotionRecommender(rc, num_entities=int(graph["num_entities"]), num_relations=int(graph["num_relations"]),
                              text_dim=text_dim, edge_index=torch.as_tensor(graph["edge_index"]),
                              edge_type=torch.as_tensor(graph["edge_type"]),
                              item_ids=torch.as_tensor(graph["item_ids"]))


@torch.no_grad()
def score_split(model: EmotionRecommender, batcher: Batcher, batch_size: int = 128, auc_batch_size: int = 32):
    """Evaluation pass in sample order → (mean weighted loss, mean plain CE, RankingAccumulator)."""
    from ..metrics import RankingAccumulator

    model.eval()
    device = next(model.parameters()).device
    E = model.kg()
    acc = RankingAccumulator(len(model.item_ids), auc_batch_size)
    s = batcher.s
    tot_w, tot = 0.0, 0.0
    for start in range(0, len(batcher), batch_size):
        idx = np.arange(start, min(start + batch_size, len(batcher)))
        b = to_device(batcher.batch(idx), device)
        scores = model(b, entity_reps=E).float()
        tot_w += float(weighted_loss(scores, b["target"], b["weight"])) * len(idx)
        tot += float(F.cross_entropy(scores, b["target"], reduction="sum"))
        ctx = [np.unique(_items_in(s.entities[i], model)) for i in idx]
        acc.add(scores.cpu().numpy(), s.target[idx], s.liked[idx], ctx)
    n = max(len(batcher), 1)
    return tot_w / n, tot / n, acc


def _items_in(entities: np.ndarray, model: EmotionRecommender) -> np.ndarray:
    """Item indices of the context entities (for the no-repetition Recall)."""
    lookup = getattr(model, "_item_lookup", None)
    if lookup is None:
        ids = model.item_ids.cpu().numpy()
        lookup = np.full(int(ids.max()) + 2, -1, np.int64)
        lookup[ids] = np.arange(len(ids))
        model._item_lookup = lookup
    e = entities[(entities >= 0) & (entities < len(lookup))]
    it = lookup[e]
    return it[it >= 0]


# ----------------------------------------------------------------------------- inference API (Serve)

class RecommenderPredictor:
    """Loads a trained recommender from `run_dir/recommender/<variant>/` and answers a dialogue given as text."""

    def __init__(self, cfg: Config, model_dir: Path, cache_size: int = 10_000, encoder_dtype: str = "float32"):
        from ..data.linker import EntityLinker
        from ..data.redial import MovieCatalogue
        from ..data.tables import load_dataset_kg
        from .llm import inference_dtype
        from .recommender_data import TextEncoder
        from .text_cache import TextCache

        self.cfg, self.dir = cfg, Path(model_dir)
        meta = json.loads((self.dir / "meta.json").read_text())
        rc = RecommenderConfig(**meta["recommender"])
        self.rc = rc
        prep = load_prepared(self.dir / "prepared")
        self.model = build_model(rc, prep["graph"], meta["text_dim"])
        self.model.load_state_dict(torch.load(self.dir / "model.pt", map_location="cpu", weights_only=True))
        self.model.eval()
        self.cooc = prep["cooc"]
        with torch.no_grad():
            self.E = self.model.kg()
        self.kg = load_dataset_kg(cfg)
        self.names = self.kg.names
        self.item_ids = prep["graph"]["item_ids"]
        self.linker = EntityLinker.from_kg(self.kg, include_items=True)  # resolves movie titles as well
        rdir = cfg.data.resolved_dir() / "redial"
        self.movies = MovieCatalogue.load(rdir) if rdir.exists() else None
        self.encoder = TextEncoder(rc.text_encoder, rc.max_context_tokens, inference_dtype(encoder_dtype))
        # Clients re-send the history with every request: only turns not seen yet go through the encoder.
        self.encode_turns = TextCache(self.encoder.encode, cache_size)
        self.threshold = cfg.emotion.threshold

    @classmethod
    def load(cls, cfg: Config, variant: str | None = None, cache_size: int = 10_000,
             encoder_dtype: str = "float32") -> "RecommenderPredictor":
        d = cfg.run_path / "recommender" / (variant or cfg.recommender.variant)
        if not (d / "model.pt").exists():
            raise FileNotFoundError(f"{d / 'model.pt'} not found: train it first (`ecr-ray train_recommender "
                                    f"--recipe {cfg.recipe} --recommender.variant {variant or cfg.recommender.variant}`)")
        return cls(cfg, d, cache_size, encoder_dtype)

    def _link(self, text: str) -> list[int]:
        import re

        ids = []
        for mid in re.findall(r"@(\d+)", text):  # ReDial-style movie ids
            if self.movies and mid in self.movies.entity_of:
                ids.append(self.movies.entity_of[mid])
        return list(dict.fromkeys(ids + self.linker.link_ids(re.sub(r"@\d+", " ", text))))

    def _emotions(self, probs: np.ndarray | None) -> tuple[list[int], list[float]]:
        if probs is None:
            return [], []
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if p.shape[0] != len(EMOTIONS):
            raise ValueError(f"user_emotions: expected {len(EMOTIONS)} probabilities ({EMOTIONS}), got {p.shape[0]}")
        order = [int(i) for i in np.argsort(-p)]
        kept = [i for i in order if p[i] > self.threshold][:MAX_EMO] or order[:1]
        return kept, [float(p[i]) for i in kept]

    def encode_dialogue(self, dialogue: list[dict]) -> np.ndarray:
        """Embeddings of the turns `recommend` reads, through the text cache: callers may run this ahead, e.g. while
        the emotions are being classified elsewhere."""
        return self.encode_turns(self._turn_texts(dialogue))

    def _turn_texts(self, dialogue: list[dict]) -> list[str]:
        """The last `max_context_turns` turns as the encoder sees them ("User: ..." / "Recommender: ...")."""
        from .recommender_data import turn_text

        return [turn_text("user" if t["role"] == "user" else "recommender", t["text"])
                for t in dialogue[-self.rc.max_context_turns:]]

    def recommend(self, dialogue: list[dict], user_emotions: list[np.ndarray | None] | None = None,
                  top_k: int = 10) -> dict:
        """Top-k items for one dialogue ({role: user|recommender, text}) and its per-turn user emotion
        probabilities (None for recommender turns), with the entities and emotions that drove the ranking."""
        return self.recommend_batch([dialogue], [user_emotions], [top_k])[0]

    @torch.no_grad()
    def recommend_batch(self, dialogues: list[list[dict]], user_emotions: list[list | None],
                        top_ks: list[int]) -> list[dict]:
        """`recommend` for several dialogues in one forward pass (their new turns encoded together)."""
        rc, L, K = self.rc, self.rc.max_context_entities, self.rc.max_context_turns
        feats = [self._features(d, e) for d, e in zip(dialogues, user_emotions)]
        texts = [self._turn_texts(d) for d in dialogues]
        flat = [t for ts in texts for t in ts]
        emb = self.encode_turns(flat) if flat else np.zeros((0, self.model.text[0].in_features), np.float32)
        B = len(feats)
        ents = np.full((B, L), -1, np.int64)
        emo_ids = np.full((B, L, MAX_EMO), -1, np.int64)
        emo_p = np.zeros((B, L, MAX_EMO), np.float32)
        turn_emb = np.zeros((B, K, self.model.text[0].in_features), np.float32)
        mask = np.zeros((B, K), bool)
        row = 0
        for b, (f, ts) in enumerate(zip(feats, texts)):
            off = L - len(f["order"])
            ents[b, off:] = f["order"]
            for k, e in enumerate(f["order"]):
                ids, ps = f["linked"][e]
                emo_ids[b, off + k, :len(ids)] = ids
                emo_p[b, off + k, :len(ps)] = ps
            turn_emb[b, K - len(ts):] = emb[row:row + len(ts)]
            mask[b, K - len(ts):] = True
            row += len(ts)
        batch = {"entities": torch.as_tensor(ents), "emo_ids": torch.as_tensor(emo_ids),
                 "emo_probs": torch.as_tensor(emo_p), "turn_emb": torch.as_tensor(turn_emb),
                 "turn_mask": torch.as_tensor(mask)}
        if self.cooc is not None:
            batch["cooc"] = cooc_rows(self.cooc, ents)
        probs = torch.softmax(self.model(batch, entity_reps=self.E), -1)
        out = []
        for b, (f, k) in enumerate(zip(feats, top_ks)):
            top = torch.topk(probs[b], min(int(k), probs.shape[1]))
            items = [{"entity_id": int(self.item_ids[i]), "name": self.names[int(self.item_ids[i])],
                      "score": float(s)} for s, i in zip(top.values.tolist(), top.indices.tolist())]
            expl = [{"entity_id": int(e), "name": self.names[e], "emotions": [EMOTIONS[i] for i in f["linked"][e][0]]}
                    for e in f["order"]]
            out.append({"items": items, "explanation": {"entities": expl, "variant": rc.variant}})
        return out

    def _features(self, dialogue: list[dict], user_emotions: list | None) -> dict:
        """Roles, the context entities (most recent `max_context_entities`) and each one's emotions."""
        if not dialogue:
            raise ValueError("dialogue: at least one turn is needed")
        user_emotions = list(user_emotions or [None] * len(dialogue))
        if len(user_emotions) != len(dialogue):
            raise ValueError(f"user_emotions: one entry per turn expected ({len(dialogue)}), got {len(user_emotions)}")
        roles = []
        for i, t in enumerate(dialogue):
            if t.get("role") not in ("user", "recommender", "assistant") or not isinstance(t.get("text"), str):
                raise ValueError(f"dialogue[{i}]: expected {{role: user|recommender, text: str}}, got {t!r}")
            roles.append("user" if t["role"] == "user" else "recommender")
        # Entity emotions: user turns → own emotions; recommender turns → the user's next turn's emotions.
        emos = [self._emotions(user_emotions[i]) if roles[i] == "user" else ([], []) for i in range(len(dialogue))]
        nxt: tuple = ([], [])
        linked: dict[int, tuple] = {}
        per_turn = [self._link(t["text"]) for t in dialogue]
        for i in reversed(range(len(dialogue))):
            if roles[i] == "user":
                nxt = emos[i]
            em = emos[i] if roles[i] == "user" else nxt
            for e in per_turn[i]:
                linked.setdefault(e, em)  # walking backwards: keep the most recent mention's emotions
        order = list(dict.fromkeys(e for ts in per_turn for e in ts))[-self.rc.max_context_entities:]
        return {"dialogue": dialogue, "roles": roles, "order": order, "linked": linked}
