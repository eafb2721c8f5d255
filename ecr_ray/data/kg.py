"""The DBpedia knowledge graph in UniCRS format: ids, readable names, triples, and a torch-geometric edge list."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .errors import DataError, read_json
from .schema import dict_of, digits, integer, list_of, record, string

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
        wanted = (
            None
            if relations is None
            else {self.relation2id_by_name[r] for r in relations if r in self.relation2id_by_name}
        )
        return [(head, r, t) for r, t in self._by_head.get(head, []) if wanted is None or r in wanted]

    @cached_property
    def relation2id_by_name(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.relation_names)}

    def describe(self, triple: tuple[int, int, int]) -> str:
        """`{movie}'s {relation} is {entity}` (the knowledge sentence of the generation prompt)."""
        h, r, t = triple
        return f"{self.names[h]}'s {self.relation_names[r]} is {self.names[t]}"


# What the UniCRS-format KG files must be (schema.py); ranges and uniqueness are checked in the loaders below.
IDS = dict_of(string, integer, min_len=1)
"""entity2id.json / relation2id.json: URI → id."""
SUBKG = dict_of(digits, list_of(list_of(integer, min_len=2, max_len=2)), min_len=1)
"""dbpedia_subkg.json: head id → [[relation id, tail id], ...]."""
ITEM_IDS = list_of(integer, min_len=1)
"""item_ids.json: entity ids of the recommendable movies."""
MOVIE_MAP = "redial_movieid2entity.json"
MOVIE_MAP_SPEC = dict_of(digits, record({"name": string, "entity_id": integer}, optional={"dbpedia": string}))
"""redial_movieid2entity.json: ReDial movieId → {name, entity_id, dbpedia URI}."""


def read_movie_map(path: Path) -> dict[str, dict]:
    """ReDial movieId → {name, entity_id, ...}; entity ids are checked against the KG in `load_kg`."""
    return read_json(path, MOVIE_MAP_SPEC)


def _dense_ids(path: Path) -> dict[str, int]:
    """entity2id / relation2id: the ids must be exactly 0..n-1, each once: they index the name tables and the
    embedding rows, so a gap or a repeat would shift or overwrite names."""
    ids = read_json(path, IDS)
    owner: dict[int, str] = {}
    for key, i in ids.items():
        if not 0 <= i < len(ids):
            raise DataError(path, None, key, f"id {i} out of range [0, {len(ids)}): ids must be 0..n-1")
        if i in owner:
            raise DataError(path, None, key, f"id {i} already used by {owner[i]!r}")
        owner[i] = key
    return ids


def _item_ids(path: Path, n: int) -> np.ndarray:
    items = read_json(path, ITEM_IDS)
    seen: set[int] = set()
    for j, i in enumerate(items):
        if not 0 <= i < n:
            raise DataError(path, None, f"[{j}]", f"entity id {i} out of range [0, {n})")
        if i in seen:
            raise DataError(path, None, f"[{j}]", f"entity id {i} listed twice")
        seen.add(i)
    return np.asarray(sorted(items), dtype=np.int64)


def _triples(path: Path, n: int, n_relations: int, loop: int | None) -> np.ndarray:
    rows = []
    for head, edges in read_json(path, SUBKG).items():
        h = int(head)
        for j, (r, t) in enumerate(edges):
            if not (h < n and 0 <= t < n):
                raise DataError(path, None, f"{head}[{j}]", f"entity id out of range [0, {n}): {(h, t)}")
            if not 0 <= r < n_relations:
                raise DataError(path, None, f"{head}[{j}]", f"relation id out of range: {r}")
            if r != loop:
                rows.append((h, r, t))
    return np.unique(np.asarray(rows, dtype=np.int64).reshape(-1, 3), axis=0)


def load_kg(kg_dir: Path, movie_map: dict[str, dict] | None = None) -> KnowledgeGraph:
    """Read `entity2id.json`, `relation2id.json`, `dbpedia_subkg.json`, `item_ids.json` from `kg_dir`; `movie_map`
    (from `read_movie_map(kg_dir / MOVIE_MAP)`) gives the items' display names. Any problem is a DataError."""
    kg_dir = Path(kg_dir)
    entity2id = _dense_ids(kg_dir / "entity2id.json")
    relation2id = _dense_ids(kg_dir / "relation2id.json")
    n = len(entity2id)
    triples = _triples(kg_dir / "dbpedia_subkg.json", n, len(relation2id), relation2id.get(SELF_LOOP))
    item_ids = _item_ids(kg_dir / "item_ids.json", n)
    item_names = {}
    for mid, info in (movie_map or {}).items():
        if not 0 <= info["entity_id"] < n:
            raise DataError(
                kg_dir / MOVIE_MAP, None, f"{mid}.entity_id", f"entity id {info['entity_id']} out of range [0, {n})"
            )
        item_names[info["entity_id"]] = " ".join(info["name"].split())
    return KnowledgeGraph(entity2id, relation2id, triples, item_ids, item_names)
