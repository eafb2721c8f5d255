"""The DBpedia knowledge graph in UniCRS format: ids, readable names, triples, and a torch-geometric edge list."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .errors import DataError

SELF_LOOP = "self_loop"


def uri_name(uri: str) -> str:
    """`<http://dbpedia.org/resource/Tom_Hanks>` → `Tom Hanks`; `<.../ontology/starring>` → `starring`."""
    s = uri.strip("<>")
    s = s.rsplit("/", 1)[-1]
    return unquote(s).replace("_", " ").strip()


def strip_disambiguation(name: str) -> str:
    """`Up (2009 film)` → `Up`; `Drama (film and television)` → `Drama`."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name).strip()


@dataclass
class KnowledgeGraph:
    entity2id: dict[str, int]
    relation2id: dict[str, int]
    triples: np.ndarray
    """[N, 3] int64 (head, relation, tail), self loops excluded, as listed in the source file."""
    item_ids: np.ndarray
    """Entity ids of recommendable items (movies)."""
    item_names: dict[int, str] = field(default_factory=dict)
    """Preferred display names of items (e.g. ReDial's `Toy Story (1995)`)."""

    @property
    def num_entities(self) -> int:
        return len(self.entity2id)

    @property
    def num_relations(self) -> int:
        return len(self.relation2id)

    @cached_property
    def names(self) -> list[str]:
        names = [""] * self.num_entities
        for uri, i in self.entity2id.items():
            names[i] = self.item_names.get(i) or uri_name(uri)
        return names

    @cached_property
    def relation_names(self) -> list[str]:
        names = [""] * self.num_relations
        for uri, i in self.relation2id.items():
            names[i] = uri_name(uri)
        return names

    @cached_property
    def item_set(self) -> frozenset[int]:
        return frozenset(int(i) for i in self.item_ids)

    @cached_property
    def _by_head(self) -> dict[int, list[tuple[int, int]]]:
        out: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for h, r, t in self.triples.tolist():
            out[h].append((r, t))
        return out

    @cached_property
    def degree(self) -> np.ndarray:
        return np.bincount(self.triples[:, [0, 2]].ravel(), minlength=self.num_entities)

    def edge_index_and_type(self):
        """Edges for `RGCNConv`: every triple in both directions with the same relation id, plus one self loop
        per entity (relation `self_loop`), as UniCRS builds them. Returns (edge_index [2, E], edge_type [E])."""
        import torch

        h, r, t = self.triples[:, 0], self.triples[:, 1], self.triples[:, 2]
        nodes = np.arange(self.num_entities)
        loop = self.relation2id.get(SELF_LOOP, self.num_relations - 1)
        src = np.concatenate([h, t, nodes])
        dst = np.concatenate([t, h, nodes])
        rel = np.concatenate([r, r, np.full(self.num_entities, loop)])
        return torch.as_tensor(np.stack([src, dst]), dtype=torch.long), torch.as_tensor(rel, dtype=torch.long)

    def triples_for(self, head: int, relations: tuple[str, ...] | None = None) -> list[tuple[int, int, int]]:
        """Triples with `head` as head, optionally only over the named relations (e.g. ("starring",))."""
        wanted = None if relations is None else {self.relation2id_by_name[r] for r in relations if r in self.relation2id_by_name}
        return [(head, r, t) for r, t in self._by_head.get(head, []) if wanted is None or r in wanted]

    @cached_property
    def relation2id_by_name(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.relation_names)}

    def describe(self, triple: tuple[int, int, int]) -> str:
        """`{movie}'s {relation} is {entity}` (the knowledge sentence of the generation prompt)."""
        h, r, t = triple
        return f"{self.names[h]}'s {self.relation_names[r]} is {self.names[t]}"


def _load_json(path: Path):
    if not path.exists():
        raise DataError(path, None, "<file>", "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, "<json>", f"malformed JSON: {e.msg}") from None


def load_kg(kg_dir: Path, movie_map: dict[str, dict] | None = None) -> KnowledgeGraph:
    """Read `entity2id.json`, `relation2id.json`, `dbpedia_subkg.json`, `item_ids.json` from `kg_dir`."""
    kg_dir = Path(kg_dir)
    entity2id = {k: int(v) for k, v in _load_json(kg_dir / "entity2id.json").items()}
    relation2id = {k: int(v) for k, v in _load_json(kg_dir / "relation2id.json").items()}
    subkg = _load_json(kg_dir / "dbpedia_subkg.json")
    n = len(entity2id)
    loop = relation2id.get(SELF_LOOP)
    rows = []
    path = kg_dir / "dbpedia_subkg.json"
    for head, edges in subkg.items():
        h = int(head)
        for pair in edges:
            r, t = int(pair[0]), int(pair[1])
            if not (0 <= h < n and 0 <= t < n):
                raise DataError(path, None, f"{head}", f"entity id out of range [0, {n}): {(h, t)}")
            if not 0 <= r < len(relation2id):
                raise DataError(path, None, f"{head}", f"relation id out of range: {r}")
            if r != loop:
                rows.append((h, r, t))
    triples = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1, 3), axis=0)
    item_ids = np.asarray(sorted(int(i) for i in _load_json(kg_dir / "item_ids.json")), dtype=np.int64)
    item_names = {}
    for info in (movie_map or {}).values():
        item_names[int(info["entity_id"])] = " ".join(str(info["name"]).split())
    return KnowledgeGraph(entity2id, relation2id, triples, item_ids, item_names)
