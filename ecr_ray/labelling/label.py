"""The LLM labelling stage (paper §4.1.1, Appendix A.1): user turns → emotion labels from any OpenAI-compatible
endpoint, with Ray Data.

Each actor of `emotion.llm_resources` keeps `emotion.llm_concurrency` requests in flight and writes every finished
batch as one Parquet shard under <run_dir>/emotions/llm_labels/ (a temp name, then renamed: a shard is all there or
not at all). A rerun skips turns already in a shard, so a killed run loses at most the batches in flight and
duplicates none. Without `emotion.llm_base_url` the project's own endpoint (`generator.base_model`: the embedded
SmolLM2, Llama-2-7b-chat in the paper recipe; `ecr_ray.llm_server`) is started as a Serve application of its own and
deleted at the end, and the labeller asks it for the model it serves (`data.endpoint_model`); nothing else running on
the cluster is touched. The API key is read from OPENAI_API_KEY (for the project's own endpoint: the service's
token variable, `serve.api_token_env`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..config import Config
from ..data.tables import read_table
from ..llm_server import start_local
from ..progress import progress
from .data import endpoint_model, labels_dir, load_seed_map, read_shards, resolve, sample, user_turns
from .evaluate import summarise
from .predictor import LLMLabeler

log = logging.getLogger(__name__)


def run_labelling(cfg: Config, todo: list[dict], out_dir: Path) -> None:
    """Label `todo` (rows of `user_turns`) into shards under `out_dir`; Ray must be initialised."""
    import ray

    e = cfg.emotion
    model = endpoint_model(cfg)  # what the endpoint below serves (a clear error before it starts, else)
    app = None
    base_url = e.llm_base_url
    if not base_url:
        base_url, app = start_local(cfg)
    try:
        kwargs = {
            "concurrency": e.llm_concurrency,
            "timeout_s": e.llm_timeout_s,
            "max_retries": e.llm_max_retries,
            "max_tokens": e.llm_max_tokens,
            "temperature": e.llm_temperature,
            # Our own endpoint takes the service's token (the actors read it from their environment, like the
            # endpoint does); any other endpoint OPENAI_API_KEY.
            "api_key_env": cfg.serve.api_token_env if app else "OPENAI_API_KEY",
        }
        ds = ray.data.from_items(todo).map_batches(
            LLMLabeler,
            fn_constructor_kwargs={
                "base_url": base_url,
                "model": model,
                "out_dir": str(out_dir),
                "client_kwargs": kwargs,
            },
            batch_size=e.llm_shard_rows,
            compute=ray.data.ActorPoolStrategy(size=e.llm_resources.workers),
            **e.llm_resources.options(),
        )
        with progress(len(todo), "llm labels", "turn") as bar:
            for batch in ds.iter_batches(batch_size=None):
                bar.update(len(batch["turn_id"]))
    finally:
        if app is not None:
            from ray import serve

            serve.delete(app)  # only the application this job started


def fit(cfg: Config) -> dict:
    """Label the selected user turns (those not labelled yet), then summarise every label of the selection."""
    t0 = time.perf_counter()
    endpoint_model(cfg)  # a model the endpoint does not serve fails here, not as a 404 per row
    turns = read_table(cfg.run_path, "turns")
    seeds = load_seed_map(cfg, turns, required=cfg.emotion.llm_subset == "seeded")
    rows = user_turns(turns)
    if cfg.emotion.llm_subset == "seeded":
        rows = [r for r in rows if r["turn_id"] in seeds]
    rows = sample(rows, cfg.emotion.llm_max_turns)
    out_dir = labels_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = read_shards(out_dir)
    done = set(shards.filter(pc.not_equal(shards["status"], "error"))["turn_id"].to_pylist())  # errors are retried
    todo = [r for r in rows if r["turn_id"] not in done]
    log.info("%d user turns selected, %d already labelled, %d to do", len(rows), len(rows) - len(todo), len(todo))
    if todo:
        run_labelling(cfg, todo, out_dir)
    selected = {r["turn_id"] for r in rows}
    table = read_shards(out_dir)
    table = table.filter(pa.array([t in selected for t in table["turn_id"].to_pylist()], pa.bool_()))
    table, duplicates = resolve(table)
    summary = summarise(cfg, table, seeds, time.perf_counter() - t0)
    summary["selected"], summary["missing"] = len(selected), len(selected - set(table["turn_id"].to_pylist()))
    summary["duplicates"] = duplicates
    (out_dir.parent / "llm_labels_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
