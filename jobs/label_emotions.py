"""Label user-turn emotions with an LLM (paper §4.1.1 / Appendix A.1) over any OpenAI-compatible endpoint.

Ray Data over the user turns (each with up to 4 previous turns as history); each actor keeps
`emotion.llm_concurrency` requests in flight and writes every finished batch as one Parquet shard under
<run_dir>/emotions/llm_labels/ (written to a temp name, then renamed: a shard is all there or not at all).
A rerun skips turns already in a shard, so a killed run loses at most the batches in flight and duplicates none.
Without --llm-base-url the project's own endpoint (serve/llm.py, the embedded SmolLM2) is started on 127.0.0.1.
The API key is read from OPENAI_API_KEY only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ecr_ray.cli import run_job
from ecr_ray.config import Config
from ecr_ray.data.tables import read_table
from ecr_ray.emotion.labels import MAX_HISTORY, build_messages, parse_answer

from ._common import parse, print_json

SHARD_SCHEMA = pa.schema([
    ("turn_id", pa.string()), ("conversation_id", pa.string()), ("split", pa.string()), ("turn_index", pa.int32()),
    ("utterance", pa.string()), ("answer", pa.string()),
    ("status", pa.string()),  # ok | scanned | unparseable | error
    ("raw", pa.list_(pa.string())), ("labels", pa.list_(pa.string())), ("unmapped", pa.list_(pa.string())),
    ("reason", pa.string()), ("error", pa.string()), ("prompt_tokens", pa.int32()),
    ("completion_tokens", pa.int32()), ("attempts", pa.int32()), ("seconds", pa.float32()), ("model", pa.string()),
])


def labels_dir(cfg: Config) -> Path:
    return cfg.run_path / "emotions" / "llm_labels"


def user_turns(turns: pa.Table) -> list[dict]:
    """User turns with up to MAX_HISTORY previous turns of the same conversation as [(role, text)]."""
    by_conv: dict[str, list[dict]] = defaultdict(list)
    for r in turns.select(["conversation_id", "split", "turn_index", "role", "text"]).to_pylist():
        by_conv[r["conversation_id"]].append(r)
    out = []
    for conv_id, conv in by_conv.items():
        conv.sort(key=lambda r: r["turn_index"])
        for i, r in enumerate(conv):
            if r["role"] == "user":
                hist = [(h["role"], h["text"]) for h in conv[max(0, i - MAX_HISTORY):i]]
                out.append({"turn_id": f"{conv_id}:{r['turn_index']}", "conversation_id": conv_id,
                            "split": r["split"], "turn_index": r["turn_index"], "utterance": r["text"],
                            "history": json.dumps(hist)})
    return out


def sample(rows: list[dict], n: int) -> list[dict]:
    """A deterministic sample of n rows (by a hash of the turn id); all rows when n == 0."""
    if not n or n >= len(rows):
        return rows
    return sorted(rows, key=lambda r: hashlib.sha256(r["turn_id"].encode()).hexdigest())[:n]


def read_shards(out_dir: Path) -> pa.Table:
    """All finished shards (temp files of a killed run are ignored)."""
    parts = sorted(out_dir.glob("part-*.parquet"))
    if not parts:
        return SHARD_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=SHARD_SCHEMA) for p in parts])


def resolve(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per turn, labelled rows before `error` rows of earlier runs (a rerun retries errors).
    Returns (table, number of labelled duplicates found: 0 unless shards were copied by hand)."""
    status = table["status"].to_pylist()
    ids = table["turn_id"].to_pylist()
    order = sorted(range(len(ids)), key=lambda i: status[i] == "error")
    seen, keep, dup = set(), [], 0
    for i in order:
        if ids[i] in seen:
            dup += status[i] != "error"
            continue
        seen.add(ids[i])
        keep.append(i)
    return table.take(sorted(keep)), dup


class LLMLabeler:
    """Ray Data actor: label one batch of turns, write it as one shard, return a small summary."""

    def __init__(self, base_url: str, model: str, out_dir: str, client_kwargs: dict):
        from ecr_ray.emotion.client import ChatClient

        self.client = ChatClient(base_url, model, **client_kwargs)
        self.model, self.out_dir = model, Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        n = len(batch["turn_id"])
        msgs = [build_messages(str(batch["utterance"][i]), [tuple(h) for h in json.loads(batch["history"][i])])
                for i in range(n)]
        rows = []
        for i, c in enumerate(self.client.complete_many(msgs)):
            p = parse_answer(c.text) if not c.error else None
            rows.append({
                "turn_id": str(batch["turn_id"][i]), "conversation_id": str(batch["conversation_id"][i]),
                "split": str(batch["split"][i]), "turn_index": int(batch["turn_index"][i]),
                "utterance": str(batch["utterance"][i]), "answer": c.text,
                "status": "error" if c.error else p.status, "raw": p.raw if p else [], "labels": p.labels if p else [],
                "unmapped": p.unmapped if p else [], "reason": p.reason if p else "", "error": c.error,
                "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "attempts": c.attempts,
                "seconds": c.seconds, "model": self.model})
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.out_dir / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), tmp)
        os.replace(tmp, self.out_dir / name)  # atomic: a shard is complete or absent
        return {"turn_id": [r["turn_id"] for r in rows], "status": [r["status"] for r in rows]}


def agreement(labelled: pa.Table, seeds: dict[str, list[str]]) -> dict:
    """How far the LLM's 9-type labels agree with the seed labels on the turns both labelled."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(r["labels"], seeds[r["turn_id"]]) for r in labelled.select(["turn_id", "labels"]).to_pylist()
             if r["turn_id"] in seeds]
    if not pairs:
        return {"turns": 0}
    tp = sum(len(set(a) & set(b)) for a, b in pairs)
    n_pred, n_gold = sum(len(a) for a, _ in pairs), sum(len(b) for _, b in pairs)
    firsts = [(a[0] if a else "none", b[0]) for a, b in pairs]
    return {
        "turns": len(pairs),
        "exact_set": round(sum(set(a) == set(b) for a, b in pairs) / len(pairs), 4),
        "any_overlap": round(sum(bool(set(a) & set(b)) for a, b in pairs) / len(pairs), 4),
        "first_label": round(sum(a == b for a, b in firsts) / len(pairs), 4),
        "micro_precision": round(tp / max(n_pred, 1), 4), "micro_recall": round(tp / max(n_gold, 1), 4),
        "cohen_kappa_first_label": round(float(cohen_kappa_score([a for a, _ in firsts], [b for _, b in firsts])), 4),
        "no_label": sum(not a for a, _ in pairs),
    }


def summarise(cfg: Config, table: pa.Table, seeds: dict[str, list[str]], seconds: float) -> dict:
    from ecr_ray.emotion.client import estimate_cost

    ids = table["turn_id"].to_pylist()
    ptok, ctok = sum(table["prompt_tokens"].to_pylist()), sum(table["completion_tokens"].to_pylist())
    unmapped = Counter(w for ws in table["unmapped"].to_pylist() for w in ws)
    errors = [r for r in table.select(["turn_id", "error"]).to_pylist() if r["error"]]
    return {
        "endpoint_model": cfg.emotion.llm_model, "rows": len(ids),
        "status": dict(Counter(table["status"].to_pylist())),
        "label_counts": dict(Counter(l for ls in table["labels"].to_pylist() for l in ls).most_common()),
        "unmapped_words": dict(unmapped.most_common()),
        "errors": {"count": len(errors), "examples": errors[:5]},
        "tokens": {"prompt": ptok, "completion": ctok},
        "estimated_cost_usd": estimate_cost(ptok, ctok, cfg.emotion.llm_price_prompt_per_1k,
                                            cfg.emotion.llm_price_completion_per_1k),
        "agreement_with_seeds": agreement(table, seeds),
        "this_run_seconds": round(seconds, 1),
    }


def load_seed_map(cfg: Config, turns: pa.Table, required: bool) -> dict[str, list[str]]:
    from ecr_ray.emotion.seeds import load_seeds, match_seeds, seed_path

    path = seed_path(cfg)
    if not path.exists() and not required:
        return {}
    matched, _ = match_seeds(turns, load_seeds(path))
    return {f"{r['conversation_id']}:{r['turn_index']}": r["labels"] for r in matched}


def run_labelling(cfg: Config, todo: list[dict], out_dir: Path) -> None:
    import ray
    from tqdm import tqdm

    e = cfg.emotion
    ray.init(ignore_reinit_error=True, log_to_driver=False)
    local = not e.llm_base_url
    try:
        base_url = e.llm_base_url
        if local:
            from serve.llm import start_local

            base_url = start_local(cfg)
        kwargs = {"concurrency": e.llm_concurrency, "timeout_s": e.llm_timeout_s, "max_retries": e.llm_max_retries,
                  "max_tokens": e.llm_max_tokens, "temperature": e.llm_temperature}
        ds = ray.data.from_items(todo).map_batches(
            LLMLabeler, fn_constructor_kwargs={"base_url": base_url, "model": e.llm_model, "out_dir": str(out_dir),
                                               "client_kwargs": kwargs},
            batch_size=e.llm_shard_rows, compute=ray.data.ActorPoolStrategy(size=e.llm_actors), num_cpus=0.1)
        with tqdm(total=len(todo), desc="llm labels", unit="turn", file=sys.stderr) as bar:
            for batch in ds.iter_batches(batch_size=None):
                bar.update(len(batch["turn_id"]))
    finally:
        if local:
            from ray import serve

            serve.shutdown()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--llm-base-url", help="OpenAI-compatible base URL (default: start the embedded-model server)")
        p.add_argument("--llm-model", help="model name sent to the endpoint")

    cfg, args = parse(__doc__.splitlines()[0], argv, extra)
    over = {k: v for k, v in (("llm_base_url", args.llm_base_url), ("llm_model", args.llm_model)) if v}
    if over:
        cfg = dataclasses.replace(cfg, emotion=dataclasses.replace(cfg.emotion, **over))
    t0 = time.perf_counter()
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
    print(f"{len(rows)} user turns selected, {len(rows) - len(todo)} already labelled, {len(todo)} to do",
          file=sys.stderr)
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
    print_json(summary)
    return 0 if summary["missing"] == 0 and summary["duplicates"] == 0 and not summary["errors"]["count"] else 1


if __name__ == "__main__":
    sys.exit(run_job(main))
