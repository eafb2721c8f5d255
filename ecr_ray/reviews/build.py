"""Building the review database (paper section 4.1.2, Appendix A.2): read and filter the reviews (data), link their
entities with Ray Data, keep the entities the authors' filter keeps and attach each movie's knowledge (knowledge).
Output: <run_dir>/reviews/{reviews,movie_knowledge}.parquet + manifest.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..artifacts import Stage
from ..config import Config
from ..data import tables
from ..data.errors import DataError, InvalidRows
from ..data.kg import strip_disambiguation
from ..data.linker import EntityLinker
from ..data.tables import load_dataset_kg
from .data import VARIANTS, apply_filters, read_reviews
from .knowledge import EntityFilter, filter_entities, movie_knowledge

log = logging.getLogger(__name__)


def link_rows(rows: list[dict], linker, names: list[str]) -> list[dict]:
    """Add `mentions` (every linked mention, in order: counts matter per movie) and `entities` / `entity_names`
    (distinct, in order of first mention)."""
    out = []
    for r in rows:
        mentions = [m.entity_id for m in linker.link(r["review"])]
        ids = list(dict.fromkeys(mentions))
        out.append(
            {**r, "mentions": mentions, "entities": ids, "entity_names": [strip_disambiguation(names[i]) for i in ids]}
        )
    return out


# ----------------------------------------------------------------------------- the whole stage


def _schemas():
    import pyarrow as pa

    reviews = pa.schema(
        [
            ("entity_id", pa.int64()),
            ("movie_name", pa.string()),
            ("review", pa.string()),
            ("entities", pa.list_(pa.int64())),
            ("entity_names", pa.list_(pa.string())),
            ("first_sentence", pa.string()),  # the dialogue line the review answers: "First Sentence:" in training
        ]
    )
    knowledge = pa.schema(
        [
            ("entity_id", pa.int64()),
            ("movie_name", pa.string()),
            ("review_entities", pa.list_(pa.int64())),
            ("review_entity_names", pa.list_(pa.string())),
            ("triples", pa.list_(pa.string())),
            ("triple_tails", pa.list_(pa.string())),  # the tail entity of each triple (the `entities` format)
        ]
    )
    return reviews, knowledge


class _LinkBatch:
    """Ray Data actor: builds the linker once, links a batch of reviews."""

    def __init__(self, cfg):
        kg = load_dataset_kg(cfg)
        self.linker, self.names = EntityLinker.from_kg(kg), kg.names

    def __call__(self, batch: dict) -> dict:
        import pyarrow as pa

        rows = [{"row": i, "review": t} for i, t in zip(batch["row"].to_pylist(), batch["review"].to_pylist())]
        linked = link_rows(rows, self.linker, self.names)
        return pa.table(
            {
                "row": [r["row"] for r in linked],
                "mentions": pa.array([r["mentions"] for r in linked], pa.list_(pa.int64())),
            }
        )


def link_all(rows: list[dict], cfg, engine: str = "ray") -> list[dict]:
    """Link every review: `ray` = Ray Data actor pool of `generator.link_resources`; `local` = a plain loop."""
    kg = load_dataset_kg(cfg)
    if engine == "local":
        return link_rows(rows, EntityLinker.from_kg(kg), kg.names)
    import ray

    ds = ray.data.from_items([{"row": i, "review": r["review"]} for i, r in enumerate(rows)])
    res = cfg.generator.link_resources
    ds = ds.map_batches(
        _LinkBatch,
        fn_constructor_kwargs={"cfg": cfg},
        batch_size=64,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=res.workers),
        **res.options(),
    )
    mentions = {r["row"]: list(r["mentions"]) for r in ds.take_all()}
    if len(mentions) != len(rows):
        raise RuntimeError(f"linking returned {len(mentions)} of {len(rows)} reviews")
    out = []
    for i, r in enumerate(rows):
        ids = list(dict.fromkeys(mentions[i]))
        out.append(
            {
                **r,
                "mentions": mentions[i],
                "entities": ids,
                "entity_names": [strip_disambiguation(kg.names[e]) for e in ids],
            }
        )
    return out


def fit(cfg: Config, *, force: bool = False, engine: str = "ray") -> dict:
    """Reviews file → `<run_dir>/reviews/{reviews,movie_knowledge}.parquet` + manifest.json (returned). Skipped when
    up to date unless `force`. `engine`: `ray` (Ray Data actors; Ray must be initialised) or `local` (a plain loop,
    same output)."""

    import pyarrow as pa
    import pyarrow.parquet as pq

    if done := STAGE.done(cfg, force):
        return done
    t0 = time.perf_counter()
    data_dir = cfg.data.resolved_dir()
    path = cfg.generator.reviews_path(data_dir)
    if not path.exists():
        raise DataError(path, None, "<file>", "reviews file not found (generator.reviews_file)")
    kg = load_dataset_kg(cfg)
    by_name = {" ".join(n.split()): i for i, n in kg.item_names.items()} or {kg.names[i]: int(i) for i in kg.item_ids}
    invalid = InvalidRows(skip=cfg.data.skip_invalid)
    raw, dropped = read_reviews(path, by_name, invalid=invalid)
    f = VARIANTS[cfg.generator.review_filter]
    kept, filtered = apply_filters(raw, f)
    dropped.update(filtered)
    linked = link_all(kept, cfg, engine)
    ef = EntityFilter.of(cfg.generator)
    filtered, entity_counts = filter_entities(linked, kg, ef)
    knowledge = movie_knowledge(filtered, kg, ef.min_mentions)

    out_dir = cfg.run_path / "reviews"
    out_dir.mkdir(parents=True, exist_ok=True)
    rs, ks = _schemas()
    pq.write_table(
        pa.Table.from_pylist([{k: r[k] for k in rs.names} for r in filtered], schema=rs), out_dir / "reviews.parquet"
    )
    pq.write_table(pa.Table.from_pylist(knowledge, schema=ks), out_dir / "movie_knowledge.parquet")
    n_words = [len(r["review"].split()) for r in linked]
    return STAGE.write_manifest(
        cfg,
        **{
            "filter": {
                "variant": cfg.generator.review_filter,
                **f.__dict__,
                "helpfulness_field_present": any(r["helpfulness"] is not None for r in raw),
            },
            "counts": {
                "read": len(raw) + dropped["movie_not_in_kg"] + dropped["invalid_row"],
                "removed": {
                    k: dropped.get(k, 0)
                    for k in (
                        "invalid_row",
                        "movie_not_in_kg",
                        "helpfulness",
                        "min_words",
                        "repetition",
                        "first_person",
                    )
                },
                "kept": len(linked),
                "movies": len(knowledge),
                "mean_words": round(sum(n_words) / max(len(n_words), 1), 1),
                "linked_mentions_per_review": round(sum(len(r["mentions"]) for r in linked) / max(len(linked), 1), 2),
                "movies_with_review_entities": sum(bool(k["review_entities"]) for k in knowledge),
                "movies_with_triples": sum(bool(k["triples"]) for k in knowledge),
            },
            "review_entities": {
                "filter": cfg.generator.review_entity_filter,
                **{k: v for k, v in ef.__dict__.items() if k != "enabled"},
                **entity_counts,
            },
            "invalid_rows": invalid.report(),
            "engine": engine,
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )


def _reviews_file(cfg: Config) -> list[Path]:
    return [cfg.generator.reviews_path(cfg.data.resolved_dir())]


STAGE = Stage(
    "reviews",
    "generator",  # the review DB is the generator's training data: its fields are generator.review_*
    "reviews",
    reads=(
        "generator.reviews_file",
        "generator.review_filter",
        "generator.min_entity_mentions",
        "generator.review_entity_filter",
        "generator.review_entity_min_global",
        "generator.review_entity_max_movies",
        "generator.review_entity_min_name_chars",
        "data.skip_invalid",
    ),
    writes=("reviews.parquet", "movie_knowledge.parquet"),
    fit=fit,
    jobs=("build_reviews",),
    resources={"build_reviews": ("generator.link_resources",)},
    after=(tables.STAGE,),
    inputs=_reviews_file,
)
