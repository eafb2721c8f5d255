"""`RecommenderPredictor`: a trained recommender answering a dialogue given as text (Serve's Recommender).

The dialogue's features are built by the rules training used (`ecr_ray.data.redial.titled` / `turn_mentions`, the
emotion stage's `select_emotions`, `build_split`'s windows): each turn's movies (`@<movieId>`s and titles written
out) and linked entities, the most recent `max_context_entities` of them, each with the emotions of its most recent
mention that has any, and the context: for backbone `light` the most recent `max_context_turns` turns encoded by the
frozen sentence encoder (through a per-text cache: clients re-send the history), for `unicrs` the token ids
`ContextTokens` builds (data prep's class). tests/recommender/test_train.py and test_unicrs.py hold these features
equal to the training arrays for the same dialogues."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..config import EMOTIONS, Config, RecommenderConfig, section_from_dict
from ..data.linker import EntityLinker
from ..data.redial import MovieCatalogue, titled, turn_mentions
from ..data.tables import load_dataset_kg
from ..emotion.data import keep_labels
from ..emotion.links import select_emotions
from ..hub import device, inference_dtype
from ..prompts import turn_line
from ..text_cache import TextCache
from .data import MAX_EMO, ROLE, ContextTokens, cooc_rows, load_prepared, mention_features, token_batch
from .model import TextEncoder, build_model, load_saved


class RecommenderPredictor:
    """Loads a trained recommender from `run_dir/recommender/<variant>/` and answers a dialogue given as text."""

    def __init__(self, cfg: Config, model_dir: Path, cache_size: int = 10_000, encoder_dtype: str = "float32"):
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
        self.model = build_model(rc, prep["graph"], meta["text_dim"], cfg.offline)
        load_saved(self.model, self.dir / "model.pt")
        self.model.eval().to(self.device)
        self.cooc = prep["cooc"]
        with torch.no_grad():
            self.E = self.model.entity_reps()
        self.kg = load_dataset_kg(cfg)
        self.names = self.kg.names
        self.item_ids = prep["graph"]["item_ids"]
        self.item_col = {int(e): c for c, e in enumerate(self.item_ids)}  # item entity → its score column
        self.linker = EntityLinker.from_kg(self.kg, include_items=True)  # resolves movie titles as well
        rdir = cfg.data.resolved_dir() / "redial"
        self.movies = MovieCatalogue.load(rdir) if rdir.exists() else MovieCatalogue({}, {})
        if rc.backbone == "unicrs":  # the model holds its frozen encoder; the context goes in as token ids
            self.tokens = ContextTokens(rc.text_encoder, rc.plm, rc.max_context_tokens, cfg.offline)
        else:
            self.tokens = None
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
        self.max_emotions = min(cfg.emotion.max_emotions_per_entity, MAX_EMO)

    @classmethod
    def load(
        cls, cfg: Config, variant: str | None = None, cache_size: int = 10_000, encoder_dtype: str = "float32"
    ) -> RecommenderPredictor:
        """The model `variant` names (a folder under run_dir/recommender: `full`, `full+copy`, ...; default the
        recipe's `recommender.name`)."""
        name = variant or cfg.recommender.name
        d = cfg.run_path / "recommender" / name
        if not (d / "model.pt").exists():
            copy = " --recommender.copy_mentioned true" if name.endswith("+copy") else ""
            raise FileNotFoundError(
                f"{d / 'model.pt'} not found: train it first (`ecr-ray train_recommender "
                f"--recipe {cfg.recipe} --recommender.variant {name.removesuffix('+copy')}{copy}`)"
            )
        return cls(cfg, d, cache_size, encoder_dtype)

    def _link(self, text: str) -> list[int]:
        """A turn's entities as the data stage lists them: its movies (KG ones), then the linked entities."""
        _, movies, linked = turn_mentions(text, self.movies.entity_of, self.linker)
        return list(dict.fromkeys([e for e in movies if e >= 0] + linked))

    def _emotions(self, probs: np.ndarray | None) -> tuple[list[int], list[float]]:
        """A user turn's probabilities → the emotion ids and probabilities its entities take (the emotion stage's
        `keep_labels` + `select_emotions`)."""
        if probs is None:
            return [], []
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if p.shape[0] != len(EMOTIONS):
            raise ValueError(f"user_emotions: expected {len(EMOTIONS)} probabilities ({EMOTIONS}), got {p.shape[0]}")
        labels = keep_labels(p, self.threshold, fallback_top=True)
        names, ps = select_emotions(labels, p, self.threshold, self.max_emotions)
        return [EMOTIONS.index(n) for n in names], ps

    def encode_dialogue(self, dialogue: list[dict]) -> np.ndarray | tuple:
        """What the model reads of the dialogue's text: the embeddings of the turns `recommend` reads, through the
        text cache (`light`; callers may run this ahead, e.g. while the emotions are being classified elsewhere), or
        its context token ids (`unicrs`: cheap, the encoder runs inside the model)."""
        if self.tokens is not None:
            return self.tokens.context(*self.tokens.turns(self._turn_texts(dialogue)))
        return self.encode_turns(self._turn_texts(dialogue))

    def _turn_texts(self, dialogue: list[dict]) -> list[str]:
        """The turns as the data stage wrote them ("User: ..." / "Recommender: ...", `@<movieId>` written as the
        movie's name): the last `max_context_turns` (`light`), or all of them (`unicrs` cuts by tokens)."""

        def name(mid: str) -> str:
            return self.movies.names.get(mid, f"@{mid}")

        turns = dialogue if self.tokens is not None else dialogue[-self.rc.max_context_turns :]
        return [turn_line(t["role"], titled(t["text"], name)) for t in turns]

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
        feats, batch = self.inputs(dialogues, user_emotions)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        probs = torch.softmax(self.model(batch, entity_reps=self.E), -1).cpu()
        out = []
        for b, (f, k) in enumerate(zip(feats, top_ks)):
            # Without the copy head a movie the dialogue already names is not recommended (in ReDial a recommender
            # often repeats one: the repetition shortcut of the metrics, docs/data.md); with it the model learned
            # when a mentioned movie is the answer (docs/recommender.md, the copy head), so its ranking stands.
            ranked = probs[b].clone()
            if not self.rc.copy_mentioned:
                ranked[[self.item_col[e] for e in f["mentioned"]]] = -1.0
            top = torch.topk(ranked, min(int(k), probs.shape[1]))
            items = [
                {"entity_id": int(self.item_ids[i]), "name": self.names[int(self.item_ids[i])], "score": float(s)}
                for s, i in zip(top.values.tolist(), top.indices.tolist())
                if s >= 0
            ]
            expl = [
                {"entity_id": int(e), "name": self.names[e], "emotions": [EMOTIONS[i] for i in f["linked"][e][0]]}
                for e in f["order"]
            ]
            out.append({"items": items, "explanation": {"entities": expl, "variant": self.rc.name}})
        return out

    def inputs(self, dialogues: list[list[dict]], user_emotions: list[list | None]) -> tuple[list[dict], dict]:
        """The dialogues' `_features` and the model's input batch (CPU tensors), laid out as training's
        `Batcher.batch` lays out samples (most recent last, padding -1 / 0 / False in front)."""
        L = self.rc.max_context_entities
        feats = [self._features(d, e) for d, e in zip(dialogues, user_emotions)]
        B = len(feats)
        ents = np.full((B, L), -1, np.int64)
        emo_ids = np.full((B, L, MAX_EMO), -1, np.int64)
        emo_p = np.zeros((B, L, MAX_EMO), np.float32)
        age, role = np.full((B, L), -1, np.int64), np.full((B, L), -1, np.int64)
        for b, f in enumerate(feats):
            off = L - len(f["order"])
            ents[b, off:] = f["order"]
            ages, roles = mention_features([f["latest"][e] for e in f["order"]], len(f["dialogue"]))
            age[b, off:], role[b, off:] = ages, roles
            for k, e in enumerate(f["order"]):
                ids, ps = f["linked"][e]
                emo_ids[b, off + k, : len(ids)] = ids
                emo_p[b, off + k, : len(ps)] = ps
        arrays = {"entities": ents, "emo_ids": emo_ids, "emo_probs": emo_p, "ent_age": age, "ent_role": role}
        batch = {k: torch.as_tensor(v) for k, v in arrays.items()}
        if self.tokens is not None:
            rows = [self.encode_dialogue(d) for d in dialogues]
            batch.update(token_batch(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])))
        else:
            batch.update(self._turn_batch(dialogues))
        if self.cooc is not None:
            batch["cooc"] = cooc_rows(self.cooc, ents)
        return feats, batch

    def _turn_batch(self, dialogues: list[list[dict]]) -> dict[str, torch.Tensor]:
        """`light`: the last `max_context_turns` turn embeddings of each dialogue, most recent last (zeros in front)."""
        K, dim = self.rc.max_context_turns, self.model.text[0].in_features
        texts = [self._turn_texts(d) for d in dialogues]
        flat = [t for ts in texts for t in ts]
        emb = self.encode_turns(flat) if flat else np.zeros((0, dim), np.float32)
        turn_emb = np.zeros((len(dialogues), K, dim), np.float32)
        mask = np.zeros((len(dialogues), K), bool)
        row = 0
        for b, ts in enumerate(texts):
            turn_emb[b, K - len(ts) :] = emb[row : row + len(ts)]
            mask[b, K - len(ts) :] = True
            row += len(ts)
        return {"turn_emb": torch.as_tensor(turn_emb), "turn_mask": torch.as_tensor(mask)}

    def _features(self, dialogue: list[dict], user_emotions: list | None) -> dict:
        """Roles, the context entities (most recent `max_context_entities`), each one's emotions and its latest
        mention (turn, role: the copy head's mention age and speaker)."""
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
        # Entity emotions: user turns → own emotions; recommender turns → the user's next turn's emotions; an entity
        # takes those of its most recent mention that has any (the emotion stage links no other mention).
        emos = [self._emotions(user_emotions[i]) if roles[i] == "user" else ([], []) for i in range(len(dialogue))]
        nxt: tuple = ([], [])
        linked: dict[int, tuple] = {}
        per_turn = [self._link(t["text"]) for t in dialogue]
        for i in reversed(range(len(dialogue))):
            if roles[i] == "user":
                nxt = emos[i]
            em = emos[i] if roles[i] == "user" else nxt
            for e in per_turn[i]:
                if em[0]:
                    linked.setdefault(e, em)  # walking backwards: the most recent mention with emotions wins
        order = list(dict.fromkeys(e for ts in per_turn for e in ts))[-self.rc.max_context_entities :]
        for e in order:
            linked.setdefault(e, ([], []))
        mentioned = {e for ts in per_turn for e in ts if e in self.item_col}
        latest = {e: (i, ROLE[roles[i]]) for i, ts in enumerate(per_turn) for e in ts}  # the last mention wins
        return {
            "dialogue": dialogue,
            "roles": roles,
            "order": order,
            "linked": linked,
            "mentioned": mentioned,
            "latest": latest,
        }
