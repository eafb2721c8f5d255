"""Build and read the Parquet tables every later stage reads (`<run_dir>/tables/`).

turns.parquet      one row per turn: conversation_id, split, turn_index, role, message_ids, text, raw_text,
                   movie_ids, movie_entities (aligned with movie_ids; -1 = not in the KG), entities (linked)
feedback.parquet   one row per (conversation, movie): liked 0/1/2, feedback dislike/like/not_said, source
samples.parquet    recommendation samples: context, context_entities, target_item, liked, target_in_context
entities.parquet   entity_id, uri, name, is_item
kg_triples.parquet head, relation, tail (self loops excluded; the encoder adds them)
manifest.json      counts, input hashes, config hash, build time: what produced these tables
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import artifacts
from ..artifacts import Stage
from ..config import Config, ConfigError
from . import inspired, redial
from .errors import InvalidRows
from .kg import MOVIE_MAP, KnowledgeGraph, load_kg, read_movie_map
from .linker import EntityLinker
from .sources import Sources

log = logging.getLogger(__name__)
TABLES = ("turns", "feedback", "samples", "entities", "kg_triples")


def in_valid(conversation_id: str, fraction: float, seed: int) -> bool:
    """Deterministic validation membership by a hash of the conversation id (stable across machines)."""
    h = int(hashlib.sha256(f"{seed}:{conversation_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


class RunDataMismatch(ConfigError):
    """A run's trained stages read with data other than those its tables were built from."""


def data_key(inputs: dict[str, str | None]) -> str:
    """One key for a data directory's files (relative path → content hash, as a tables manifest lists them)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def check_run_data(cfg: Config) -> None:
    """Refuse to read a run with other data than it was built from: the content hashes of the raw files this config
    reads (the dataset's splits and KG files) must be those in the run's tables manifest, else `RunDataMismatch`
    names both (directory, data key, the files that differ) and the two ways out. A run without tables passes."""
    manifest = STAGE.read_manifest(cfg)
    if not manifest or "inputs" not in manifest:
        return
    data_dir = cfg.data.resolved_dir()
    now = {
        str(p.relative_to(data_dir)): artifacts.file_hash(p) if p.exists() else None
        for p in Sources.of(data_dir, cfg.data.dataset).files()
    }
    built = manifest["inputs"]
    if now == built:
        return
    differ = sorted(k for k in {*now, *built} if now.get(k) != built.get(k))
    shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
    raise RunDataMismatch(
        f"run {cfg.run_path} was built from the {manifest.get('dataset')} data in {manifest.get('data_dir')} (data "
        f"key {data_key(built)}), but this configuration reads the {cfg.data.dataset} data in {data_dir} (data key "
        f"{data_key(now)}); {len(differ)} file(s) differ: {shown}. Read the run with the data it was built from "
        f"(--data-dir {manifest.get('data_dir')}; ECR_DATA_DIR, when set, overrides the recipe's), or build a run on "
        f"these data (`ecr-ray pipeline --recipe {cfg.recipe} --data-dir {data_dir} --run-dir <another run dir>`)"
    )


def load_dataset_kg(cfg: Config, check_run: bool = True) -> KnowledgeGraph:
    """The dataset's KG (with ReDial's movie names). `check_run`: first `check_run_data` — every stage reading a
    built run loads the KG through here; only building the tables themselves passes False."""
    if check_run:
        check_run_data(cfg)
    src = Sources.of(cfg.data.resolved_dir(), cfg.data.dataset)
    map_path = src.kg_dir / MOVIE_MAP
    movie_map = read_movie_map(map_path) if src.redial_dir is not None and map_path.exists() else None
    return load_kg(src.kg_dir, movie_map)


def build_tables(cfg: Config, *, force: bool = False) -> dict:
    """Raw data → Parquet tables + manifest (returned). Skipped when up to date unless `force`."""
    if done := STAGE.done(cfg, force):
        return done
    t0 = time.perf_counter()
    data_dir = cfg.data.resolved_dir()
    src = Sources.of(data_dir, cfg.data.dataset)
    src.check()
    out_dir = cfg.run_path / "tables"
    kg = load_dataset_kg(cfg, check_run=False)  # these tables are what the run is checked against
    # Movie titles written out (without ReDial's @id) are movie mentions too: serving sees nothing else.
    linker = EntityLinker.from_kg(kg, include_items=True) if cfg.data.link_entities else None
    invalid = InvalidRows(skip=cfg.data.skip_invalid)

    turns, feedback, n_conv = [], [], {}
    if cfg.data.dataset == "redial":
        movies = redial.MovieCatalogue.load(src.redial_dir)
        seen: dict[str, str] = {}  # conversation id → where read first, across splits
        for split, path in src.splits.items():
            t, f, n = redial.load_split(path, split, movies, linker, invalid, cfg.data.max_conversations, seen=seen)
            turns += t
            feedback += f
            n_conv[split] = n
    else:
        for split, path in src.splits.items():
            t, f, n = inspired.load_split(path, split, kg.entity2id, invalid, cfg.data.max_conversations)
            turns += t
            n_conv[split] = n

    # Carve validation from train, deterministically by conversation id.
    valid_ids = {
        t["conversation_id"]
        for t in turns
        if t["split"] == "train" and in_valid(t["conversation_id"], cfg.data.valid_fraction, cfg.seed)
    }
    for row in (*turns, *feedback):
        if row["conversation_id"] in valid_ids and row["split"] == "train":
            row["split"] = "valid"
    n_conv["valid"] = len(valid_ids)
    n_conv["train"] -= len(valid_ids)

    fb_index = redial.as_feedback_index(feedback)
    samples, not_sampled = [], {"no_context": 0, "not_in_kg": 0}
    for conv_turns in redial.group_by_conversation(turns).values():
        s, skipped = redial.recommendation_samples(conv_turns, fb_index)
        samples += s
        for k, v in skipped.items():
            not_sampled[k] += v

    out_dir.mkdir(parents=True, exist_ok=True)
    entities = [
        {"entity_id": i, "uri": uri, "name": kg.names[i], "is_item": i in kg.item_set}
        for uri, i in sorted(kg.entity2id.items(), key=lambda x: x[1])
    ]
    kg_rows = {"head": kg.triples[:, 0], "relation": kg.triples[:, 1], "tail": kg.triples[:, 2]}
    pq.write_table(pa.Table.from_pylist(turns, schema=TURNS_SCHEMA), out_dir / "turns.parquet")
    pq.write_table(pa.Table.from_pylist(feedback, schema=FEEDBACK_SCHEMA), out_dir / "feedback.parquet")
    pq.write_table(pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), out_dir / "samples.parquet")
    pq.write_table(pa.Table.from_pylist(entities), out_dir / "entities.parquet")
    pq.write_table(pa.table(kg_rows), out_dir / "kg_triples.parquet")

    return STAGE.write_manifest(
        cfg,
        dataset=cfg.data.dataset,
        data_dir=str(data_dir),
        inputs={str(p.relative_to(data_dir)): artifacts.file_hash(p) for p in src.files()},
        counts=_counts(turns, feedback, samples, n_conv, kg),
        not_sampled=not_sampled,
        invalid_rows=invalid.report(),
        build_seconds=round(time.perf_counter() - t0, 2),
    )


def _counts(turns, feedback, samples, n_conv, kg) -> dict:
    by_split: dict[str, dict] = {}
    for split in ("train", "valid", "test"):
        ts = [t for t in turns if t["split"] == split]
        ss = [s for s in samples if s["split"] == split]
        user = [t for t in ts if t["role"] == "user"]
        by_split[split] = {
            "conversations": n_conv.get(split, 0),
            "turns": len(ts),
            "messages": sum(len(t["message_ids"]) for t in ts),
            "samples": len(ss),
            "samples_by_feedback": {k: sum(s["feedback"] == k for s in ss) for k in ("like", "dislike", "not_said")},
            "samples_target_in_context": sum(s["target_in_context"] for s in ss),
            "linked_entities_per_turn": round(sum(len(t["entities"]) for t in ts) / max(len(ts), 1), 3),
            "linked_entities_per_user_turn": round(sum(len(t["entities"]) for t in user) / max(len(user), 1), 3),
        }
    fb = {k: sum(f["feedback"] == k for f in feedback) for k in ("like", "dislike", "not_said")}
    return {
        "splits": by_split,
        "feedback": fb,
        "entities": kg.num_entities,
        "relations": kg.num_relations,
        "items": len(kg.item_ids),
        "kg_triples": int(len(kg.triples)),
    }


TURNS_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("split", pa.string()),
        ("turn_index", pa.int32()),
        ("role", pa.string()),
        ("message_ids", pa.list_(pa.int64())),
        ("text", pa.string()),
        ("raw_text", pa.string()),
        ("movie_ids", pa.list_(pa.string())),
        ("movie_entities", pa.list_(pa.int64())),
        ("entities", pa.list_(pa.int64())),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("split", pa.string()),
        ("movie_id", pa.string()),
        ("movie_name", pa.string()),
        ("entity_id", pa.int64()),
        ("liked", pa.int8()),
        ("feedback", pa.string()),
        ("source", pa.string()),
    ]
)
SAMPLES_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("conversation_id", pa.string()),
        ("split", pa.string()),
        ("turn_index", pa.int32()),
        ("context", pa.list_(pa.string())),
        ("context_entities", pa.list_(pa.int64())),
        ("target_movie_id", pa.string()),
        ("target_item", pa.int64()),
        ("liked", pa.int8()),
        ("feedback", pa.string()),
        ("target_in_context", pa.bool_()),
        ("response", pa.string()),
    ]
)


def read_table(run_dir: Path, name: str, split: str | None = None) -> pa.Table:
    """Read one table from `<run_dir>/tables/`, optionally one split."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known: {TABLES}")
    path = Path(run_dir) / "tables" / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the tables first (`ecr-ray data --recipe ...`)")
    filters = [("split", "=", split)] if split else None
    return pq.read_table(path, filters=filters)


def _raw_files(cfg: Config) -> list[Path]:
    return Sources.of(cfg.data.resolved_dir(), cfg.data.dataset).files()


STAGE = Stage(
    "data",
    "data",
    "tables",
    reads=("data", "seed"),
    writes=("turns.parquet", "samples.parquet"),
    fit=build_tables,
    jobs=("data",),
    inputs=_raw_files,
    version=2,  # 2: movie titles written out are linked as movie mentions
)
