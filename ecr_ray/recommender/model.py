"""The emotion-aware item recommender (paper section 4.2) on the `light` backbone, the Eq. 7 loss, `build_model` for
either backbone and their saved weights. The `unicrs` backbone is in unicrs.py, the parts both share (KG encoder,
Eq. 3-4 emotion fusion, copy head) in layers.py.

    entity reps   E = RGCN(node embeddings) + residual, then a residual MLP        (UniCRS KG encoder)
    local  (Eq. 3-4)  v_j = Σ_{i≤3} p_i · Emb[f_i];   ê_j = MLP([E_j ; v_j])
    global (Eq. 5)    g_j = Σ_i P(e_i | e_j) · E_i;    ĝ_j = MLP([g_j ; v_j])     (same fuse MLP, emotions duplicated)
    prompt (Eq. 6)    [learned prompt tokens ; ê_1..ê_L ; ĝ_1..ĝ_L ; turn states] → Transformer encoder
    scores            u = mean(prompt-token outputs) → u · E_items   (every item scored)
    copy (optional)   log p(item) = CopyHead(u, entity-slot outputs, mention ages/roles, u · E_items)
    loss   (Eq. 7)    mean_k m(f_k) · CE(scores_k, item_k)

Fusion (our choice, documented): UniCRS feeds the fused prompt to a frozen DialoGPT as prefix key/values and scores
entities with the LM's last hidden state. On CPU we replace the frozen LM with a small trainable Transformer over
the prompt sequence, and the token-level context with per-turn states of a frozen sentence encoder (all-MiniLM-L6-v2
by default), precomputed once and cached. Cross-entropy runs over item entities only (UniCRS trains over all
entities and restricts to items at evaluation; over items is the same ranking task with a smaller softmax).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import RecommenderConfig
from ..hub import resolve
from ..progress import progress
from .layers import CopyHead, EmotionFuse, KGEncoder, entity_to_item
from .unicrs import build_unicrs


class EmotionRecommender(nn.Module):
    def __init__(
        self,
        rc: RecommenderConfig,
        *,
        num_entities: int,
        num_relations: int,
        text_dim: int,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        item_ids: torch.Tensor,
    ):
        super().__init__()
        d = rc.entity_dim
        self.local, self.glob = rc.local_emotions, rc.global_emotions
        self.kg = KGEncoder(num_entities, num_relations, d, rc.num_bases, edge_index, edge_type)
        self.fuse = EmotionFuse(d, rc.emotion_dim) if self.local else None
        self.text = nn.Sequential(nn.Linear(text_dim, d), nn.LayerNorm(d))
        self.prompt = nn.Parameter(torch.randn(rc.prompt_tokens, d) * d**-0.5)
        self.turn_pos = nn.Embedding(rc.max_context_turns, d)
        self.segment = nn.Embedding(4, d)  # prompt / local entities / global entities / turns
        layer = nn.TransformerEncoderLayer(
            d, nhead=max(1, d // 32), dim_feedforward=2 * d, dropout=rc.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, rc.fusion_layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.item_bias = nn.Parameter(torch.zeros(len(item_ids)))
        self.register_buffer("item_ids", item_ids, persistent=False)
        self.copy = CopyHead(d) if rc.copy_mentioned else None
        if self.copy is not None:
            self.register_buffer("item_of", entity_to_item(num_entities, item_ids), persistent=False)

    FROZEN: tuple[str, ...] = ()
    """Parameter prefixes of frozen parts (none here: the sentence encoder runs once, in data prep)."""

    def entity_reps(self) -> torch.Tensor:
        """[N, d] every entity (one KG pass; inference computes it once)."""
        return self.kg()

    def forward(self, batch: dict[str, torch.Tensor], entity_reps: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, n_items]. `entity_reps` may be passed in to reuse one KG pass (inference)."""
        E = self.kg() if entity_reps is None else entity_reps
        dt = E.dtype  # inputs follow the model's dtype (bf16 under DeepSpeed on GPUs)
        ent = batch["entities"]
        B, L = ent.shape
        ent_mask = ent >= 0
        e = E[ent.clamp(min=0)] * ent_mask.unsqueeze(-1)
        seq, masks = (
            [self.prompt.expand(B, -1, -1) + self.segment.weight[0]],
            [ent_mask.new_ones(B, self.prompt.shape[0])],
        )
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
        P = self.prompt.shape[0]
        u = self.out(h[:, :P].mean(1))
        scores = u @ E[self.item_ids].T + self.item_bias
        if self.copy is None:
            return scores
        slots = self.item_of[ent.clamp(min=0)].masked_fill(~ent_mask, -1)
        return self.copy(u, h[:, P : P + L], slots, batch["ent_age"], batch["ent_role"], scores)


def weighted_loss(scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Eq. 7: mean of w_k · CE_k."""
    return (F.cross_entropy(scores.float(), target, reduction="none") * weight).mean()


def build_model(
    rc: RecommenderConfig, graph: dict[str, np.ndarray], text_dim: int | None, offline: bool = False
) -> nn.Module:
    """The recommender of `rc.backbone` for the prepared KG: `light` needs the sentence vectors' width, `unicrs` loads
    its frozen text encoder and PLM (offline from the cache when asked)."""
    if rc.backbone == "unicrs":
        return build_unicrs(rc, graph, offline)
    return EmotionRecommender(
        rc,
        num_entities=int(graph["num_entities"]),
        num_relations=int(graph["num_relations"]),
        text_dim=int(text_dim),
        edge_index=torch.as_tensor(graph["edge_index"]),
        edge_type=torch.as_tensor(graph["edge_type"]),
        item_ids=torch.as_tensor(graph["item_ids"]),
    )


def saved_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights a checkpoint and model.pt hold: everything but the frozen models (`model.FROZEN` prefixes), which
    load from their own names."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(model.FROZEN)}


def load_saved(model: nn.Module, path) -> None:
    """Load `saved_state` weights from `path`; every other parameter must be a frozen one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(model.FROZEN)]
    if missing or unexpected:
        raise RuntimeError(
            f"{path}: weights do not fit this recommender: missing {missing[:5]}, unexpected {unexpected[:5]} "
            "(backbone/variant/sizes changed, or a model written by an older version: retrain it with "
            "`ecr-ray train_recommender ... --force`)"
        )


# ----------------------------------------------------------------------------- the frozen context encoder


class TextEncoder:
    """Frozen sentence encoder: mean-pooled, L2-normalised last hidden states (all-MiniLM-L6-v2 by default)."""

    def __init__(
        self, name: str = "minilm", max_tokens: int = 200, dtype=None, device: str = "cpu", offline: bool = False
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = resolve(name, offline)
        self.name, self.max_tokens, self.device = name, max_tokens, device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(device)
        if dtype is not None:
            self.model = self.model.to(dtype)
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        torch = self._torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts])  # similar lengths per batch: little padding
        with torch.inference_mode(), progress(len(texts), "turn encodings", "turn", quiet_below=5000) as bar:
            for s in range(0, len(texts), batch_size):
                idx = order[s : s + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                v = (h * m).sum(1) / m.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(v.float(), dim=-1).cpu().numpy()
                bar.update(len(idx))
        return out
