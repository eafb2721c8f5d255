"""The UniCRS backbone (Wang et al., KDD 2022; paper §3.2) with ECR's emotion parts (§4.2): `backbone: unicrs`.

    entity reps   E = Linear_H(KG encoder)                                   [N, H]   (H = the PLM's width)
    token states  T = Linear_H(h + MLP(h)),  h = frozen text encoder(context tokens)  [B, T, H]
    fusion        A = T W Eᵀ / H;   ê_j = e_j + Σ_t softmax_t(A)_tj · T_t   (each context entity reads the context)
    local  (Eq. 3-4)  v_j = Σ_{i≤3} p_i · Emb[f_i];   ẽ_j = MLP([ê_j ; v_j])
    global (Eq. 5)    g_j = Σ_i P(e_i | e_j) · E_i;    g̃_j = MLP([g_j ; v_j])      (same MLP, emotions duplicated)
    prompt (Eq. 6)    [S_rec ; ẽ_1..ẽ_L ; g̃_1..g̃_L] → x + MLP(x) → Linear → per-layer prefix (k, v) of the frozen PLM
    scores            h = PLM(context tokens | prefix)[last position];   h · E_items
    copy (optional)   log p(item) = CopyHead(h, ẽ_1..ẽ_L, mention ages/roles, h · E_items)   (model.py)
    loss   (Eq. 7)    mean_k m(f_k) · CE(scores_k, item_k)

As the authors' code does for recommendation (and the paper's Eq. 2 and 6 write), the prompt carries the fused
*entity* side: the context reaches the PLM as its own input tokens D, and the entities' view of it through the
fusion. Prompt pre-training (UniCRS's first phase, `recommender.pretrain_epochs`) is this model in `pretraining`
mode: without the task tokens S_rec, every entity a turn names scored over all entities, from the dialogue up to and
including that turn (data.pretrain_samples), unweighted. The text encoder and the PLM are frozen: no gradient, eval
mode (no dropout), and not part of the saved weights (`saved_state`). Our choices beyond UniCRS: padded tokens and
entities are masked (UniCRS attends to them), the recommendation softmax runs over the item entities only (as
`light`; UniCRS over all entities), and the PLM's positions count from its first real token.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import RecommenderConfig
from ..hub import resolve
from .layers import CopyHead, EmotionFuse, KGEncoder, entity_to_item


def residual_mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))


class SemanticFusion(nn.Module):
    """UniCRS's bilinear token–entity fusion, entity side: A = T W Eᵀ / H (H, not √H, as UniCRS); every entity adds the
    context token states weighted by its softmax over the tokens (residual)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bilinear = nn.Linear(dim, dim, bias=False)
        self.dim = dim

    def forward(self, ent: torch.Tensor, tok: torch.Tensor, tok_mask: torch.Tensor) -> torch.Tensor:
        a = self.bilinear(tok) @ ent.transpose(1, 2) / self.dim  # [B, T, L]
        a = a.masked_fill(~tok_mask.unsqueeze(-1), torch.finfo(a.dtype).min)
        return ent + a.softmax(1).transpose(1, 2) @ tok  # [B, L, T] @ [B, T, H]


class PrefixEncoder(nn.Module):
    """Prompt vectors [B, P, H] → one (key, value) pair [B, kv_heads, P, head_dim] per PLM layer (prefix tuning;
    UniCRS's prompt_proj1/2)."""

    def __init__(self, dim: int, hidden: int, layers: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.mlp = residual_mlp(dim, hidden)
        self.out = nn.Linear(dim, layers * 2 * kv_heads * head_dim)
        self.shape = (layers, 2, kv_heads, head_dim)

    def forward(self, prompt: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        B, P, _ = prompt.shape
        layers, _, heads, head_dim = self.shape
        kv = self.out(prompt + self.mlp(prompt)).view(B, P, layers, 2, heads, head_dim).permute(2, 3, 0, 4, 1, 5)
        return [(k, v) for k, v in kv]  # kv: [layers, 2, B, heads, P, head_dim]


def plm_geometry(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head width) of a GPT-2- or Llama-style config (grouped-query attention included)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


class UnicrsRecommender(nn.Module):
    FROZEN = ("encoder.", "plm.")
    """Parameter prefixes of the frozen models: never trained, never saved."""

    def __init__(
        self,
        rc: RecommenderConfig,
        *,
        num_entities: int,
        num_relations: int,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        item_ids: torch.Tensor,
        encoder: nn.Module,
        plm: nn.Module,
    ):
        super().__init__()
        self.local, self.glob = rc.local_emotions, rc.global_emotions
        self.encoder, self.plm = encoder.requires_grad_(False).eval(), plm.requires_grad_(False).eval()
        H, t = plm.config.hidden_size, encoder.config.hidden_size
        self.kg = KGEncoder(num_entities, num_relations, rc.entity_dim, rc.num_bases, edge_index, edge_type)
        self.entity_proj = nn.Linear(rc.entity_dim, H)
        self.token_mlp = residual_mlp(t, t // 2)
        self.token_proj = nn.Linear(t, H)
        self.fusion = SemanticFusion(H)
        self.fuse = EmotionFuse(H, rc.emotion_dim) if self.local else None
        self.task = nn.Parameter(torch.randn(rc.prompt_tokens, H))  # S_rec (UniCRS: N(0, 1), reparameterised by an MLP)
        self.task_mlp = residual_mlp(H, H // 2)
        self.prefix = PrefixEncoder(H, rc.prefix_hidden or H // 2, *plm_geometry(plm.config))
        self.register_buffer("item_ids", item_ids, persistent=False)
        self.copy = CopyHead(H) if rc.copy_mentioned else None
        if self.copy is not None:
            self.register_buffer("item_of", entity_to_item(num_entities, item_ids), persistent=False)
        self.pretraining = False

    PRETRAIN_UNUSED = ("task", "copy.")
    """Parameters prompt pre-training does not use (no task tokens, no item scores): frozen while it runs."""

    def pretrain_mode(self, on: bool = True) -> UnicrsRecommender:
        """UniCRS's prompt pre-training: no task tokens, every entity scored (`forward` returns [B, num_entities]);
        the parameters it does not use stop requiring gradients (so DDP does not wait for them)."""
        self.pretraining = on
        for name, p in self.named_parameters():
            if name.startswith(self.PRETRAIN_UNUSED) and not name.startswith(self.FROZEN):
                p.requires_grad_(not on)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout, in training too
        self.plm.eval()
        return self

    def entity_reps(self) -> torch.Tensor:
        """[N, H] every entity at the PLM's width (one KG pass; inference computes it once)."""
        return self.entity_proj(self.kg())

    def token_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (-1) encoder ids → projected token states [B, T, H] and their mask."""
        mask = ids >= 0
        with torch.no_grad():
            h = self.encoder(input_ids=ids.clamp(min=0), attention_mask=mask.long()).last_hidden_state
        h = h.to(self.token_proj.weight.dtype)
        return self.token_proj(h + self.token_mlp(h)), mask

    def lm_state(self, ids: torch.Tensor, prefix: list, prefix_mask: torch.Tensor) -> torch.Tensor:
        """The frozen PLM's last hidden state [B, H] over left-padded (-1) ids after the prefix key/values: the last
        position is every row's last token, and positions count from each row's first real token."""
        from transformers import DynamicCache

        mask = ids >= 0
        out = self.plm(
            input_ids=ids.clamp(min=0),
            attention_mask=torch.cat([prefix_mask, mask], 1).long(),
            position_ids=(mask.long().cumsum(1) - 1).clamp(min=0),
            cache=DynamicCache(ddp_cache_data=prefix),
            use_cache=True,
        )
        return out.last_hidden_state[:, -1]

    def forward(self, batch: dict[str, torch.Tensor], entity_reps: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, n_items] (in `pretraining` mode [B, num_entities]). `entity_reps` may be passed in to reuse one
        KG pass (inference)."""
        E = self.entity_reps() if entity_reps is None else entity_reps
        ent = batch["entities"]
        B, L = ent.shape
        ent_mask = ent >= 0
        tok, tok_mask = self.token_states(batch["enc_ids"])
        e = self.fusion(E[ent.clamp(min=0)], tok, tok_mask)
        parts, masks = [], []
        if not self.pretraining:  # UniCRS pre-trains the prompt without the recommendation task tokens
            task = self.task + self.task_mlp(self.task)
            parts, masks = [task.expand(B, -1, -1)], [ent_mask.new_ones(B, task.shape[0])]
        if self.local:
            v = self.fuse.emotion(batch["emo_ids"], batch["emo_probs"].to(e.dtype))
            e = self.fuse(e, v)
        parts.append(e)
        masks.append(ent_mask)
        if self.glob:
            g = torch.sparse.mm(batch["cooc"], E.float()).to(E.dtype).view(B, L, -1)  # Eq. 5
            parts.append(self.fuse(g, v))
            masks.append(ent_mask)
        prefix = self.prefix(torch.cat(parts, 1).to(E.dtype))
        h = self.lm_state(batch["plm_ids"], prefix, torch.cat(masks, 1)).to(E.dtype)
        if self.pretraining:
            return h @ E.T
        scores = h @ E[self.item_ids].T
        if self.copy is None:
            return scores
        slots = self.item_of[ent.clamp(min=0)].masked_fill(~ent_mask, -1)
        return self.copy(h, e, slots, batch["ent_age"], batch["ent_role"], scores)


def load_frozen(name: str, offline: bool = False, causal: bool = False) -> nn.Module:
    """A frozen model in float32 by the hub's rules (embedded names, paths, hub ids; offline from the cache): the text
    encoder (`AutoModel`), or the body of a causal LM (`causal`: its hidden states, without the LM head)."""
    from transformers import AutoModel, AutoModelForCausalLM

    if causal:
        return AutoModelForCausalLM.from_pretrained(resolve(name, offline), dtype=torch.float32).base_model
    return AutoModel.from_pretrained(resolve(name, offline), dtype=torch.float32)


def build_unicrs(rc: RecommenderConfig, graph: dict[str, np.ndarray], offline: bool = False) -> UnicrsRecommender:
    return UnicrsRecommender(
        rc,
        num_entities=int(graph["num_entities"]),
        num_relations=int(graph["num_relations"]),
        edge_index=torch.as_tensor(graph["edge_index"]),
        edge_type=torch.as_tensor(graph["edge_type"]),
        item_ids=torch.as_tensor(graph["item_ids"]),
        encoder=load_frozen(rc.text_encoder, offline),
        plm=load_frozen(rc.plm, offline, causal=True),
    )
