"""Training the emotion classifier on the seed labels (the Train skeleton's `EmotionTask`), then the stage as a whole
(`fit`): label every user turn (Ray Data) and link entity emotions.

Outputs under <run_dir>/emotions/: classifier/model (the best epoch by validation Recall@2), classifier/report.json
(Recall@k, per-label P/R/F1, negative recall on the validation split), turn_emotions.parquet,
entity_emotions.parquet, manifest.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq

from .. import artifacts
from ..artifacts import Stage
from ..config import EMOTIONS, Config, config_from_dict
from ..data import tables
from ..data.tables import read_table
from ..hub import resolve
from ..runtime import run_task
from ..train import LoopSettings, Task, TrainRun, copy_model, precision_of, read_state, steps_for
from ..train import fit as fit_run
from .data import class_weights, split_seeds, targets_from_labels
from .evaluate import evaluate, evaluate_saved
from .links import link_entity_emotions, link_report
from .model import EmotionClassifier, focal_loss, model_dir, save_classifier
from .predictor import EmotionPredictor, apply_seed_override, label_turns

log = logging.getLogger(__name__)


class EmotionTask(Task):
    """Encoder + 9-way head with focal loss on soft targets; batches from the `train` dataset shard."""

    name = "emotion"

    def __init__(self, config: dict, worker):
        import ray.train
        from transformers import AutoTokenizer

        super().__init__(config, worker)
        self.cfg = config_from_dict(config["cfg"])
        self.e = self.cfg.emotion

        self.backbone = resolve(self.e.classifier_model, self.cfg.offline)
        self.tok = AutoTokenizer.from_pretrained(self.backbone)
        self.shard = ray.train.get_dataset_shard("train")
        valid = list(ray.train.get_dataset_shard("valid").iter_rows())
        self.valid_texts = [r["text"] for r in valid]
        self.valid_y = targets_from_labels([list(r["labels"]) for r in valid])
        self.weights = config["class_weights"]

    def model(self):
        return EmotionClassifier(self.backbone)

    def steps_per_epoch(self) -> int:
        # Ray Data splits the rows equally over the workers (the remainder is dropped).
        return steps_for(self.config["train_rows"] // self.worker.world, self.e.batch_size, 1)

    def batches(self, epoch: int):
        import torch

        for b in self.shard.iter_batches(
            batch_size=self.e.batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=self.config["train_rows"],
            local_shuffle_seed=self.cfg.seed + epoch,
        ):
            enc = self.tok(
                [str(t) for t in b["text"]],
                padding=True,
                truncation=True,
                max_length=self.e.max_length,
                return_tensors="pt",
            ).to(self.worker.device)
            y = torch.as_tensor(targets_from_labels([list(ls) for ls in b["labels"]]), device=self.worker.device)
            yield enc, y / y.sum(1, keepdim=True)  # soft targets: two labels → 0.5 / 0.5

    def batch_size(self, batch) -> int:
        return len(batch[1])

    def loss(self, model, batch):
        import torch

        enc, target = batch
        weights = torch.tensor(self.weights, device=target.device)
        return focal_loss(model(enc["input_ids"], enc["attention_mask"]), target, self.e.focal_gamma, weights)

    def validate(self, model) -> dict:
        probs = EmotionPredictor(model, self.tok, self.e.max_length, self.e.label_batch_size).predict(self.valid_texts)
        model.train()
        m = evaluate(probs, self.valid_y, self.e.threshold)
        return {
            "valid_recall@2": m["recall@2"],
            "valid_negative_recall": m["negative_recall"],
            "valid_macro_f1": m["macro_f1"],
        }

    def export(self, model, out: Path) -> None:
        save_classifier(model, self.tok, out, {"max_length": self.e.max_length, "backbone": self.e.classifier_model})

    def restore(self, model, src: Path) -> None:
        import torch
        from transformers import AutoModel

        model.encoder.load_state_dict(AutoModel.from_pretrained(src / "backbone").state_dict())
        model.head.load_state_dict(torch.load(src / "head.pt", map_location="cpu", weights_only=True))


TRAIN_FIELDS = (
    "classifier_model",
    "focal_gamma",
    "class_weight_power",
    "valid_fraction",
    "epochs",
    "batch_size",
    "lr",
    "max_length",
    "max_train_rows",
    "seed_labels",
)


def train_key(cfg: Config) -> str:
    """What the trained classifier depends on: a rerun with the same key reuses it and only relabels."""
    d = cfg.to_dict()
    blob = {
        "emotion": {k: d["emotion"][k] for k in TRAIN_FIELDS},
        "workers": cfg.emotion.train_resources.workers,
        "seed": cfg.seed,
        "tables": (tables.STAGE.read_manifest(cfg) or {}).get("key"),
        "seed_labels": [artifacts.file_hash(p) for p in _seed_labels(cfg)],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_classifier(cfg: Config, train_rows: list[dict], valid_rows: list[dict]) -> tuple[Path, list[dict]]:
    """Ray Train run (resumable by its name); the best epoch (valid Recall@2) goes to emotions/classifier/model."""
    import pyarrow as pa
    import ray

    e = cfg.emotion
    y = targets_from_labels([r["labels"] for r in train_rows])

    def dataset(rows):
        return ray.data.from_arrow(pa.table({"text": [r["text"] for r in rows], "labels": [r["labels"] for r in rows]}))

    run = TrainRun(
        task="ecr_ray.emotion.train:EmotionTask",
        name=f"emotion-{train_key(cfg)}",
        storage=cfg.run_path / "emotions" / "classifier" / "ray",
        resources=e.train_resources,
        max_failures=e.max_failures,
        settings=LoopSettings(
            precision=precision_of(e.dtype),
            lr=e.lr,
            weight_decay=0.01,
            epochs=e.epochs,
            warmup_fraction=0.1,
            grad_clip=0.0,
            micro_batch=e.batch_size,
            select=("valid_recall@2", "max"),
        ),
        config={
            "cfg": cfg.with_absolute_paths().to_dict(),
            "seed": cfg.seed,
            "train_rows": len(train_rows),
            "class_weights": class_weights(y, e.class_weight_power).tolist(),
        },
        datasets={"train": dataset(train_rows), "valid": dataset(valid_rows)},
        split=("train",),
        keep=1,
        force_cpu=cfg.force_cpu,
    )
    _, checkpoint = fit_run(run)
    target = model_dir(cfg)
    shutil.rmtree(target, ignore_errors=True)
    copy_model(checkpoint, target)
    return target, read_state(checkpoint)["history"]


def fit(cfg: Config, *, force: bool = False) -> dict:
    """The emotion stage: (re)train the classifier unless an identical one exists, label every user turn, link entity
    emotions, write the manifest. Skipped entirely when up to date (unless `force`)."""
    if done := STAGE.done(cfg, force):
        return done
    t0 = time.perf_counter()
    turns = read_table(cfg.run_path, "turns")
    train_rows, valid_rows, match_report = split_seeds(cfg, turns)
    out = cfg.run_path / "emotions"
    out.mkdir(parents=True, exist_ok=True)
    key = train_key(cfg)
    report_path = out / "classifier" / "report.json"
    old = json.loads(report_path.read_text()) if report_path.exists() else {}
    reuse = not force and old.get("train_key") == key and (model_dir(cfg) / "meta.json").exists()
    t_train = time.perf_counter()
    if reuse:
        log.info("emotions: classifier with train key %s found: reusing it, relabelling only", key)
        path, report = model_dir(cfg), old
    else:
        path, history = train_classifier(cfg, train_rows, valid_rows)
        # Final numbers of the saved model on the validation split, in a Ray task (same code path as inference).
        metrics = run_task(
            evaluate_saved,
            cfg.emotion.label_resources,
            str(path),
            [r["text"] for r in valid_rows],
            [r["labels"] for r in valid_rows],
            cfg.emotion.threshold,
            cfg.emotion.device,
            cfg.emotion.dtype,
        )
        report = {
            "valid": metrics,
            "train_rows": len(train_rows),
            "valid_rows": len(valid_rows),
            "epochs": history,
            "seed_match": match_report,
            "backbone": cfg.emotion.classifier_model,
            "train_seconds": round(time.perf_counter() - t_train, 1),
            "train_key": key,
        }
        report_path.write_text(json.dumps(report, indent=2))
    t_train = time.perf_counter() - t_train

    t_label = time.perf_counter()
    turn_emotions = label_turns(cfg, turns, path)
    t_label = time.perf_counter() - t_label
    if cfg.emotion.seed_override:
        turn_emotions = apply_seed_override(turn_emotions, train_rows + valid_rows)
    entity_emotions = link_entity_emotions(
        turns, turn_emotions, cfg.emotion.threshold, cfg.emotion.max_emotions_per_entity
    )
    pq.write_table(turn_emotions, out / "turn_emotions.parquet")
    pq.write_table(entity_emotions, out / "entity_emotions.parquet")
    label_counts = dict.fromkeys(EMOTIONS, 0)
    for ls in turn_emotions["labels"].to_pylist():
        for label in ls:
            label_counts[label] += 1
    valid = report["valid"]
    return STAGE.write_manifest(
        cfg,
        train_key=key,
        reused_classifier=reuse,
        counts={
            "user_turns": len(turn_emotions),
            "entity_links": len(entity_emotions),
            "label_counts": label_counts,
            "links": link_report(turns, entity_emotions),
        },
        valid={k: valid[k] for k in ("rows", "recall@1", "recall@2", "negative_recall", "macro_f1")},
        seconds={"train": round(t_train, 1), "label": round(t_label, 1), "total": round(time.perf_counter() - t0, 1)},
    )


def _seed_labels(cfg: Config) -> list[Path]:
    return [cfg.emotion.seed_path(cfg.data.resolved_dir())]


STAGE = Stage(
    "emotions",
    "emotion",
    "emotions",
    reads=(
        "emotion.-llm_base_url",
        "emotion.-llm_model",
        "emotion.-llm_resources",
        "emotion.-label_resources",
        "emotion.-train_resources",
        "emotion.-label_batch_size",
        "seed",
    ),
    writes=("turn_emotions.parquet", "entity_emotions.parquet"),
    fit=fit,
    jobs=("train_emotion",),
    resources={"train_emotion": ("emotion.train_resources", "emotion.label_resources")},
    after=(tables.STAGE,),
    inputs=_seed_labels,
)
