"""The parts both recommender backbones share (model.py `light`, unicrs.py `unicrs`): the KG encoder, the Eq. 3-4
emotion fusion, the copy head over mentioned entities, the entity → item map, and the mention features' sizes."""

from __future__ import annotations

import torch
from torch import nn

from ..config import EMOTIONS

ROLE = {"user": 0, "recommender": 1}
MAX_AGE = 16
"""Mention ages (turns since an entity's latest mention) above this share one bucket of the copy head."""
MAX_RANK = 8
"""Recency places among the mentioned items (0 = the most recent) from this one on share one bias of the copy head."""


class KGEncoder(nn.Module):
    """UniCRS's KG encoder: one RGCNConv (basis decomposition) + residual, then a residual MLP."""

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        dim: int,
        num_bases: int,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
    ):
        super().__init__()
        from torch_geometric.nn import RGCNConv  # not FastRGCNConv: ~20x slower and 4 GB on CPU

        self.node = nn.Embedding(num_entities, dim)
        nn.init.normal_(self.node.weight, std=dim**-0.5)
        self.conv = RGCNConv(dim, dim, num_relations, num_bases=num_bases)
        self.mlp = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, dim))
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_type", edge_type, persistent=False)

    def forward(self) -> torch.Tensor:
        x = self.node.weight
        # PyG's RGCNConv sums the messages into a float32 zeros tensor whatever the weights' dtype
        # (torch_geometric/nn/conv/rgcn_conv.py): back to the weights' dtype (bf16 under DeepSpeed).
        h = self.conv(x, self.edge_index, self.edge_type).to(x.dtype) + x
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


class CopyHead(nn.Module):
    """The items already mentioned in the dialogue, scored by a pointer (`recommender.copy_mentioned`).

    A pointer-generator (See et al., ACL 2017) whose gate is a sentinel (Merity et al., ICLR 2017), over the context
    entity slots that are items:

        ptr_j   = (W_q u) · (W_k k_j + Age[a_j] + Role[r_j]) / √d      k_j: the slot's state in the backbone
                  + b_rank[n_j] + α · log softmax(g)_{item j}            n_j: recency rank, g: the backbone's scores
        s       = w_s · u + b_s                                        the sentinel: "a new item"
        [π_1..π_L, γ] = softmax([ptr_1..ptr_L, s])                     (non-item slots masked)
        p(item) = π_j                     for the item in slot j
                  γ · softmax_{i ∉ context}(g_i)   for every other item

    so the probability of repeating a mentioned item, which one, and the backbone's ranking of the new items are all
    learned from the same loss. The key k_j carries what the dialogue said about the item: in the emotion variants it
    is built from the entity fused with the emotions of its latest mention (Eq. 3-4); a_j = turns since its latest
    mention (capped at MAX_AGE), r_j = who made it. Two terms need no query, so the pointer starts from what the
    trivial rankings know: n_j = the item's place among the mentioned items, most recent first (the repeat rule's
    order: later turns first, later slots first within a turn; capped at MAX_RANK), with a learned bias per place;
    and the backbone's own log-probability of the item (what the user's preferences say about it), with a learned
    weight α. The query projection starts at zero, so training starts from those two terms. Returns
    log-probabilities (a softmax of them gives p back, so the loss, the metrics and serving read them as scores)."""

    def __init__(self, dim: int, query_dim: int | None = None):
        super().__init__()
        self.query = nn.Linear(query_dim or dim, dim)
        self.key = nn.Linear(dim, dim)
        self.age = nn.Embedding(MAX_AGE + 1, dim)
        self.role = nn.Embedding(len(ROLE), dim)
        self.rank_bias = nn.Embedding(MAX_RANK + 1, 1)
        self.prior_weight = nn.Parameter(torch.zeros(()))
        self.sentinel = nn.Linear(query_dim or dim, 1)
        for emb in (self.age, self.role):
            nn.init.normal_(emb.weight, std=dim**-0.5)
        # the query starts at 0 (as LoRA's B): the pointer starts as the learned recency order plus the backbone's
        # view, and the query term moves it only as far as the data supports
        for p in (self.query.weight, self.query.bias, self.rank_bias.weight):
            nn.init.zeros_(p)

    @staticmethod
    def recency_rank(age: torch.Tensor, is_item: torch.Tensor) -> torch.Tensor:
        """[B, L] each item slot's place among the row's item slots, most recent first (0); later slots first among
        equal ages. Non-item slots get MAX_RANK (they are masked anyway)."""
        L = age.shape[1]
        recency = -age.clamp(min=0) * L + torch.arange(L, device=age.device)  # higher = more recent, all distinct
        recency = recency.masked_fill(~is_item, torch.iinfo(recency.dtype).min)
        above = (recency.unsqueeze(1) > recency.unsqueeze(2)) & is_item.unsqueeze(1)  # [B, j, i]: slot i above j
        return above.sum(-1).clamp(max=MAX_RANK).masked_fill(~is_item, MAX_RANK)

    def forward(
        self,
        u: torch.Tensor,
        keys: torch.Tensor,
        slot_items: torch.Tensor,
        age: torch.Tensor,
        role: torch.Tensor,
        item_scores: torch.Tensor,
    ) -> torch.Tensor:
        """u [B, Dq], keys [B, L, D], slot_items [B, L] (item index of each slot, -1: padding or not an item), age and
        role [B, L], item_scores [B, n_items] → log-probabilities [B, n_items] (float32)."""
        q = self.query(u).float()
        k = (self.key(keys) + self.age(age.clamp(0, MAX_AGE)) + self.role(role.clamp(min=0))).float()
        is_item = slot_items >= 0
        prior = item_scores.float().log_softmax(-1).gather(1, slot_items.clamp(min=0)).clamp(min=-100.0)  # [B, L]
        ptr = (k @ q.unsqueeze(-1)).squeeze(-1) / k.shape[-1] ** 0.5
        ptr = ptr + self.rank_bias(self.recency_rank(age, is_item)).squeeze(-1).float() + self.prior_weight * prior
        ptr = ptr.masked_fill(~is_item, float("-inf"))
        logp = torch.cat([ptr, self.sentinel(u).float()], 1).log_softmax(-1)  # [B, L + 1]
        b, j = is_item.nonzero(as_tuple=True)
        mentioned = torch.zeros_like(item_scores, dtype=torch.bool)
        mentioned[b, slot_items[b, j]] = True
        out = item_scores.float().masked_fill(mentioned, float("-inf")).log_softmax(-1) + logp[:, -1:]
        out[b, slot_items[b, j]] = logp[b, j]
        return out


def entity_to_item(num_entities: int, item_ids: torch.Tensor) -> torch.Tensor:
    """[num_entities] the item index of each entity, -1 for entities that are not items."""
    lookup = torch.full((num_entities,), -1, dtype=torch.long)
    lookup[item_ids.long()] = torch.arange(len(item_ids))
    return lookup
