"""Train the user-emotion classifier on the seed labels (Ray Train), then label every user turn (Ray Data).

Outputs under <run_dir>/emotions/: classifier/model (EmotionPredictor), classifier/report.json (Recall@k,
per-label P/R/F1, negative recall on the validation split), turn_emotions.parquet, entity_emotions.parquet,
manifest.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ecr_ray.cli import run_job
from ecr_ray.config import EMOTIONS, Config
from ecr_ray.data.tables import read_table, sha256_file
from ecr_ray.emotion.links import link_entity_emotions, link_report, turn_entities
from ecr_ray.emotion.seeds import in_seed_valid, load_seeds, match_seeds, seed_path
from ecr_ray.models import emotion as em

from ._common import parse, print_json

TURN_EMOTIONS_SCHEMA = pa.schema([
    ("conversation_id", pa.string()), ("turn_index", pa.int32()), ("role", pa.string()),
    ("probs", pa.list_(pa.float32())), ("labels", pa.list_(pa.string())), ("source", pa.string()),
])


def train_loop(config: dict) -> None:
    """Ray Train worker: fine-tune encoder + head with focal loss; report valid metrics + checkpoint per epoch."""
    import ray.train
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(config["seed"])
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tok = AutoTokenizer.from_pretrained(em.resolve_backbone(config["backbone"]))
    model = em.EmotionClassifier(config["backbone"])
    if world > 1:
        model = ray.train.torch.prepare_model(model)
    core = model.module if hasattr(model, "module") else model
    texts, y = config["train_texts"][rank::world], torch.tensor(np.asarray(config["train_y"])[rank::world])
    weights = torch.tensor(config["weights"])
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.01)
    bs, steps_per_epoch = config["batch_size"], (len(texts) + config["batch_size"] - 1) // config["batch_size"]
    total_steps = steps_per_epoch * config["epochs"]
    warmup = max(1, total_steps // 10)  # linear warm-up then linear decay
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(total_steps - warmup, 1))))
    rng = np.random.default_rng(config["seed"] + rank)
    for epoch in range(config["epochs"]):
        model.train()
        order, total = rng.permutation(len(texts)), 0.0
        for i in range(0, len(texts), bs):
            idx = order[i:i + bs]
            enc = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=config["max_length"],
                      return_tensors="pt")
            target = y[idx] / y[idx].sum(1, keepdim=True)  # soft targets: two labels → 0.5 / 0.5
            loss = em.focal_loss(model(enc["input_ids"], enc["attention_mask"]), target, config["gamma"], weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        predictor = em.EmotionPredictor(core, tok, config["max_length"])
        probs = predictor.predict(config["valid_texts"])
        core.train()
        metrics = em.evaluate(probs, np.asarray(config["valid_y"]), config["threshold"])
        report = {"epoch": epoch + 1, "train_loss": total / max(len(texts), 1),
                  "valid_recall@2": metrics["recall@2"], "valid_negative_recall": metrics["negative_recall"]}
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                em.save_classifier(core, tok, Path(d), {"max_length": config["max_length"],
                                                        "backbone": config["backbone"], "epoch": epoch + 1})
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report(report, checkpoint=checkpoint)


TRAIN_FIELDS = ("classifier_model", "focal_gamma", "class_weight_power", "valid_fraction", "epochs", "batch_size",
                "lr", "max_length", "max_train_rows", "num_workers", "seed_labels")


def train_key(cfg: Config, seeds_sha: str, turns_sha: str) -> str:
    """What the trained classifier depends on: a rerun with the same key reuses it and only relabels."""
    d = cfg.to_dict()
    blob = json.dumps({"emotion": {k: d["emotion"][k] for k in TRAIN_FIELDS}, "data": d["data"], "seed": cfg.seed,
                       "inputs": [seeds_sha, turns_sha]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(cfg: Config, train_rows: list[dict], valid_rows: list[dict]) -> tuple[Path, list[dict]]:
    """TorchTrainer fit; the best epoch (valid Recall@2) is copied to emotions/classifier/model."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    e = cfg.emotion
    y_train = em.targets_from_labels([r["labels"] for r in train_rows])
    config = {
        "backbone": e.classifier_model, "seed": cfg.seed, "epochs": e.epochs, "batch_size": e.batch_size,
        "lr": e.lr, "max_length": e.max_length, "gamma": e.focal_gamma, "threshold": e.threshold,
        "threads": max(1, (os.cpu_count() or 1) // e.num_workers),
        "weights": em.class_weights(y_train, e.class_weight_power).tolist(),
        "train_texts": [r["text"] for r in train_rows], "train_y": y_train.tolist(),
        "valid_texts": [r["text"] for r in valid_rows],
        "valid_y": em.targets_from_labels([r["labels"] for r in valid_rows]).tolist(),
    }
    out = cfg.run_path / "emotions" / "classifier"
    trainer = TorchTrainer(
        train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=e.num_workers, use_gpu=False),
        run_config=RunConfig(name=f"emotion-{cfg.section_hash('emotion', 'data', 'seed')}",
                             storage_path=str(out / "ray_results"),
                             checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="valid_recall@2",
                                                                checkpoint_score_order="max")))
    result = trainer.fit()
    best = result.best_checkpoints[0][0] if result.best_checkpoints else result.checkpoint
    target = em.model_dir(cfg)
    shutil.rmtree(target, ignore_errors=True)
    with best.as_directory() as d:
        shutil.copytree(d, target)
    history = [m for _, m in result.best_checkpoints] if result.best_checkpoints else [result.metrics]
    return target, history


def label_turns(cfg: Config, turns: pa.Table, model_path: Path) -> pa.Table:
    """Every user turn of every split → probs with Ray Data map_batches over an actor pool."""
    import ray

    users = turns.filter(pc.equal(turns["role"], "user"))
    has_ent = [bool(turn_entities(r)) for r in users.select(["movie_entities", "entities"]).to_pylist()]
    base = pa.table({"row": pa.array(range(len(users)), pa.int64()), "text": users["text"]})
    # Blocks of similar-length turns: each batch pads to its longest turn, so sorting saves most of the padding.
    base = base.take(pa.array(np.argsort(pc.utf8_length(base["text"]).to_numpy(), kind="stable")))
    threads = max(1, (os.cpu_count() or 1) // cfg.emotion.label_actors)
    step = cfg.emotion.label_batch_size  # one block per batch, so every actor of the pool gets work
    blocks = [base.slice(i, step) for i in range(0, len(base), step)] or [base]
    ds = ray.data.from_arrow(blocks).map_batches(
        em.BatchLabeler, fn_constructor_kwargs={"path": str(model_path), "threads": threads},
        batch_size=cfg.emotion.label_batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cfg.emotion.label_actors), num_cpus=1)
    probs = np.zeros((len(users), len(EMOTIONS)), dtype=np.float32)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        probs[batch["row"]] = np.stack(batch["probs"])
    labels = [em.keep_labels(p, cfg.emotion.threshold, fallback_top=h) for p, h in zip(probs, has_ent)]
    return pa.table({
        "conversation_id": users["conversation_id"], "turn_index": users["turn_index"], "role": users["role"],
        "probs": pa.array([p.tolist() for p in probs], pa.list_(pa.float32())),
        "labels": pa.array(labels, pa.list_(pa.string())), "source": pa.array(["classifier"] * len(users)),
    }, schema=TURN_EMOTIONS_SCHEMA)


def apply_seed_override(table: pa.Table, seed_rows: list[dict]) -> pa.Table:
    """Seed-labelled turns keep their seed labels (probs stay the classifier's); source `seed`."""
    seeds = {(r["conversation_id"], r["turn_index"]): r["labels"] for r in seed_rows}
    rows = table.to_pylist()
    for r in rows:
        s = seeds.get((r["conversation_id"], r["turn_index"]))
        if s is not None:
            r["labels"], r["source"] = list(s), "seed"
    return pa.Table.from_pylist(rows, schema=TURN_EMOTIONS_SCHEMA)


def main(argv: list[str] | None = None) -> int:
    import ray

    cfg, _ = parse(__doc__.splitlines()[0], argv)
    t0 = time.perf_counter()
    turns = read_table(cfg.run_path, "turns")
    spath = seed_path(cfg)
    matched, match_report = match_seeds(turns, load_seeds(spath))
    if not matched:
        raise FileNotFoundError(f"no seed label of {spath} matches a turn in {cfg.run_path / 'tables'}")
    valid = [r for r in matched if in_seed_valid(r["conversation_id"], cfg.emotion.valid_fraction, cfg.seed)]
    train_rows = [r for r in matched if not in_seed_valid(r["conversation_id"], cfg.emotion.valid_fraction, cfg.seed)]
    if cfg.emotion.max_train_rows:
        train_rows = train_rows[:cfg.emotion.max_train_rows]
    if not valid or not train_rows:
        raise ValueError(f"seed split is empty (train {len(train_rows)}, valid {len(valid)}): change "
                         f"emotion.valid_fraction ({cfg.emotion.valid_fraction})")
    out = cfg.run_path / "emotions"
    out.mkdir(parents=True, exist_ok=True)
    inputs = {"seed_labels": sha256_file(spath), "turns": sha256_file(cfg.run_path / "tables" / "turns.parquet")}
    key = train_key(cfg, inputs["seed_labels"], inputs["turns"])
    report_path = out / "classifier" / "report.json"
    old = json.loads(report_path.read_text()) if report_path.exists() else {}
    reuse = old.get("train_key") == key and (em.model_dir(cfg) / "meta.json").exists()
    ray.init(ignore_reinit_error=True, include_dashboard=True, log_to_driver=False)
    try:
        t_train = time.perf_counter()
        if reuse:
            print(f"classifier with train key {key} found: reusing it, relabelling only", file=sys.stderr)
            path, report = em.model_dir(cfg), old
        else:
            path, history = train(cfg, train_rows, valid)
            # Final numbers from the saved model, on the validation split (same code path as inference).
            predictor = em.EmotionPredictor.from_dir(path)
            metrics = em.evaluate(predictor.predict([r["text"] for r in valid]),
                                  em.targets_from_labels([r["labels"] for r in valid]), cfg.emotion.threshold)
            report = {"valid": metrics, "train_rows": len(train_rows), "valid_rows": len(valid),
                      "epochs": history, "seed_match": match_report, "backbone": cfg.emotion.classifier_model,
                      "train_seconds": round(time.perf_counter() - t_train, 1), "train_key": key}
            report_path.write_text(json.dumps(report, indent=2))
        metrics = report["valid"]
        t_train = time.perf_counter() - t_train

        t_label = time.perf_counter()
        turn_emotions = label_turns(cfg, turns, path)
        t_label = time.perf_counter() - t_label
    finally:
        ray.shutdown()
    if cfg.emotion.seed_override:
        turn_emotions = apply_seed_override(turn_emotions, matched)
    entity_emotions = link_entity_emotions(turns, turn_emotions, cfg.emotion.threshold,
                                           cfg.emotion.max_emotions_per_entity)
    pq.write_table(turn_emotions, out / "turn_emotions.parquet")
    pq.write_table(entity_emotions, out / "entity_emotions.parquet")
    label_counts = {e: 0 for e in EMOTIONS}
    for ls in turn_emotions["labels"].to_pylist():
        for l in ls:
            label_counts[l] += 1
    manifest = {
        "config_hash": cfg.section_hash("emotion", "data", "seed"),
        "inputs": inputs, "train_key": key, "reused_classifier": reuse,
        "counts": {"user_turns": len(turn_emotions), "entity_links": len(entity_emotions),
                   "label_counts": label_counts, "links": link_report(turns, entity_emotions)},
        "valid": {k: metrics[k] for k in ("recall@2", "negative_recall", "macro_f1")},
        "seconds": {"train": round(t_train, 1), "label": round(t_label, 1), "total": round(time.perf_counter() - t0, 1)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print_json({"valid": {k: metrics[k] for k in ("rows", "recall@1", "recall@2", "negative_recall", "macro_f1")},
                **manifest["counts"], "seconds": manifest["seconds"]})
    print(f"emotions written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
