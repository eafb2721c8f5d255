"""`RecommenderPredictor`: a trained recommender answering a dialogue given as text (Serve's Recommender).

The dialogue's features are built the way training builds them: entities linked in each turn (movie titles and
@ids too), each entity with the emotions of its most recent mention, the most recent `max_context_turns` turns
encoded by the frozen text encoder (through a per-text cache: clients re-send the history)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..config import EMOTIONS, Config, RecommenderConfig, section_from_dict
from ..prompts import turn_line
from .data import MAX_EMO, cooc_rows, load_prepared
from .model import build_model


class RecommenderPredictor:
    """Loads a trained recommender from `run_dir/recommender/<variant>/` and answers a dialogue given as text."""

    def __init__(self, cfg: Config, model_dir: Path, cache_size: int = 10_000, encoder_dtype: str = "float32"):
        from ..data.linker import EntityLinker
        from ..data.redial import MovieCatalogue
        from ..data.tables import load_dataset_kg
        from ..hub import device, inference_dtype
        from ..text_cache import TextCache
        from .model import TextEncoder

        self.cfg, self.dir = cfg, Path(model_dir)
        meta = json.loads((self.dir / "meta.json").read_text())
        rc = section_from_dict(
            RecommenderConfig,
            meta["recommender"],
            f"{self.dir / 'meta.json'} (retrain with this version if it names unknown fields)",
        )
        self.rc = rc
        # Serving feeds the model the emotion classifier's probabilities: a model trained on other emotions (the LLM
        # seed labels and their probe) would see inputs unlike its training ones.
        source = meta.get("emotions_source", "none" if rc.variant == "baseline" else "unknown")
        if rc.local_emotions and source != "file":
            raise ValueError(
                f"{self.dir}: variant {rc.variant} was trained on {source!r} emotions, but serving gives it the "
                f"emotion classifier's: retrain it on the classifier's labels (`ecr-ray train_emotion`, then "
                f"`ecr-ray train_recommender --recommender.variant {rc.variant}` with emotions_source file)"
            )
        self.emotions_source = source
        self.device = device(cfg.recommender.device)
        prep = load_prepared(self.dir / "prepared")
        self.model = build_model(rc, prep["graph"], meta["text_dim"])
        self.model.load_state_dict(torch.load(self.dir / "model.pt", map_location="cpu", weights_only=True))
        self.model.eval().to(self.device)
        self.cooc = prep["cooc"]
        with torch.no_grad():
            self.E = self.model.kg()
        self.kg = load_dataset_kg(cfg)
        self.names = self.kg.names
        self.item_ids = prep["graph"]["item_ids"]
        self.linker = EntityLinker.from_kg(self.kg, include_items=True)  # resolves movie titles as well
        rdir = cfg.data.resolved_dir() / "redial"
        self.movies = MovieCatalogue.load(rdir) if rdir.exists() else None
        self.encoder = TextEncoder(
            rc.text_encoder,
            rc.max_context_tokens,
            inference_dtype(encoder_dtype, self.device),
            self.device,
            cfg.offline,
        )
        # Clients re-send the history with every request: only turns not seen yet go through the encoder.
        self.encode_turns = TextCache(self.encoder.encode, cache_size)
        self.threshold = cfg.emotion.threshold

    @classmethod
    def load(
        cls, cfg: Config, variant: str | None = None, cache_size: int = 10_000, encoder_dtype: str = "float32"
    ) -> RecommenderPredictor:
        d = cfg.run_path / "recommender" / (variant or cfg.recommender.variant)
        if not (d / "model.pt").exists():
            raise FileNotFoundError(
                f"{d / 'model.pt'} not found: train it first (`ecr-ray train_recommender "
                f"--recipe {cfg.recipe} --recommender.variant {variant or cfg.recommender.variant}`)"
            )
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
        return [turn_line(t["role"], t["text"]) for t in dialogue[-self.rc.max_context_turns :]]

    def recommend(
        self, dialogue: list[dict], user_emotions: list[np.ndarray | None] | None = None, top_k: int = 10
    ) -> dict:
        """Top-k items for one dialogue ({role: user|recommender, text}) and its per-turn user emotion
        probabilities (None for recommender turns), with the entities and emotions that drove the ranking."""
        return self.recommend_batch([dialogue], [user_emotions], [top_k])[0]

    @torch.no_grad()
    def recommend_batch(
        self, dialogues: list[list[dict]], user_emotions: list[list | None], top_ks: list[int]
    ) -> list[dict]:
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
                emo_ids[b, off + k, : len(ids)] = ids
                emo_p[b, off + k, : len(ps)] = ps
            turn_emb[b, K - len(ts) :] = emb[row : row + len(ts)]
            mask[b, K - len(ts) :] = True
            row += len(ts)
        batch = {
            "entities": torch.as_tensor(ents),
            "emo_ids": torch.as_tensor(emo_ids),
            "emo_probs": torch.as_tensor(emo_p),
            "turn_emb": torch.as_tensor(turn_emb),
            "turn_mask": torch.as_tensor(mask),
        }
        if self.cooc is not None:
            batch["cooc"] = cooc_rows(self.cooc, ents)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        probs = torch.softmax(self.model(batch, entity_reps=self.E), -1).cpu()
        out = []
        for b, (f, k) in enumerate(zip(feats, top_ks)):
            top = torch.topk(probs[b], min(int(k), probs.shape[1]))
            items = [
                {"entity_id": int(self.item_ids[i]), "name": self.names[int(self.item_ids[i])], "score": float(s)}
                for s, i in zip(top.values.tolist(), top.indices.tolist())
            ]
            expl = [
                {"entity_id": int(e), "name": self.names[e], "emotions": [EMOTIONS[i] for i in f["linked"][e][0]]}
                for e in f["order"]
            ]
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
        order = list(dict.fromkeys(e for ts in per_turn for e in ts))[-self.rc.max_context_entities :]
        return {"dialogue": dialogue, "roles": roles, "order": order, "linked": linked}
