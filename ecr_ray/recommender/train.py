"""Training the recommender: its Train-skeleton task (batches from the prepared files, Eq. 7 loss, validation each
epoch, the best epoch by validation loss kept) and the stage as a whole (`fit`).

`fit` writes run_dir/recommender/<variant>/: prepared/ (tensors the workers read, built by a Ray task), ray/ (the
Ray Train run and its per-epoch checkpoints), model.pt (best on validation loss), meta.json, history.json,
metrics.json (valid + test, scored by a Ray task), test_predictions.npz, manifest.json. Rerunning with the same
config skips it, or resumes the Ray Train run from its latest checkpoint when it was interrupted.

Backbone unicrs with `pretrain_epochs` > 0 first runs UniCRS's prompt pre-training (its `train_pre.py`): the same
Task in phase `pretrain`, on samples of their own (`data.pretrain_samples`: every turn, one sample per entity it
names, the dialogue up to and including that turn as the context), the model in `pretrain_mode` (no task tokens,
scores over all entities), no feedback weights, lr `pretrain_lr`; a Ray Train run of its own
(`ray/<name>-<key>-pretrain`, resumable the same way), whose best epoch (validation loss) goes to pretrain/ and
initialises the recommendation run.
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from ..artifacts import Stage
from ..config import SELECT_BY, Config, config_from_dict
from ..data import tables
from ..emotion import train as emotion_train
from ..runtime import run_task
from ..train import LoopSettings, Task, TrainRun, copy_model, precision_of, read_state, steps_for
from ..train import fit as fit_run
from .data import load_batchers, prepare, require_emotions, to_device
from .evaluate import evaluate_model, score_split
from .model import build_model, load_saved, saved_state, weighted_loss

log = logging.getLogger(__name__)


class RecommenderTask(Task):
    """Each epoch the train samples are permuted (seeded by the epoch) and dealt round-robin over the ranks; every
    rank takes the same number of steps of `batch_size / workers` samples. Config `phase: pretrain` trains on the
    prompt pre-training samples with the model in `pretrain_mode` (UniCRS's); `init` names weights to start from."""

    name = "recommender"

    def __init__(self, config: dict, worker):
        super().__init__(config, worker)
        self.cfg = config_from_dict(config["cfg"])
        self.rc = self.cfg.recommender
        self.pretrain = config.get("phase") == "pretrain"
        self.name = "recommender-pretrain" if self.pretrain else "recommender"
        self.prep, data = load_batchers(Path(config["prep_dir"]), pretrain=self.pretrain)
        self.train, self.valid = data["train"], data["valid"]
        self.micro = max(1, self.rc.batch_size // worker.world)

    def model(self):
        m = build_model(self.rc, self.prep["graph"], self.prep["meta"]["text_dim"], self.cfg.offline)
        if self.config.get("init"):  # the prompt pre-training's best epoch (a resumed run restores over it)
            load_saved(m, Path(self.config["init"]) / "model.pt")
        return m.pretrain_mode() if self.pretrain else m

    def export(self, model, out: Path) -> None:
        import torch

        out.mkdir(parents=True, exist_ok=True)
        torch.save(saved_state(model), out / "model.pt")  # without the frozen encoder / PLM

    def restore(self, model, src: Path) -> None:
        load_saved(model, src / "model.pt")

    def steps_per_epoch(self) -> int:
        return steps_for(len(self.train), self.micro, self.worker.world)

    def batches(self, epoch: int):
        shard = np.random.default_rng(self.cfg.seed + epoch).permutation(len(self.train))[
            self.worker.rank :: self.worker.world
        ]
        for step in range(self.steps_per_epoch()):
            idx = shard[step * self.micro : (step + 1) * self.micro]
            if len(idx) == 0:  # uneven shards: every rank still takes the same number of steps
                idx = shard[: self.micro]
            yield to_device(self.train.batch(idx), self.worker.device)

    def batch_size(self, batch) -> int:
        return len(batch["target"])

    def loss(self, model, batch):
        return weighted_loss(model(batch), batch["target"], batch["weight"])

    def validate(self, model) -> dict:
        loss, ce, acc = score_split(model, self.valid, auc_batch_size=self.rc.auc_batch_size)
        m = acc.compute()
        return {
            "valid_loss": loss,
            "valid_ce": ce,
            **{
                f"valid_{k}": m[k]
                for k in ("auc", "auc_global", "r@1", "r@10", "r@50", "rt@1", "rt@10", "rt@50")
                if k in m
            },
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def output_dir(cfg: Config) -> Path:
    return STAGE.path(cfg)


def fit(cfg: Config, *, force: bool = False, callbacks: list | None = None, evaluate_test: bool = True) -> dict:
    """Prepare tensors (Ray task), train (Ray Train), keep the best epoch, score valid + test (Ray task); returns the
    manifest. `callbacks` go to the Train RunConfig (Tune's TuneReportCallback in sweeps, which set
    `evaluate_test=False`: a sweep selects on validation only). Ray must be initialised."""
    rc = cfg.recommender
    out = output_dir(cfg)
    if done := STAGE.done(cfg, force):
        return done
    if tables.STAGE.read_manifest(cfg) is None:
        raise FileNotFoundError(f"{cfg.run_path / 'tables'} not found: build the tables first (`ecr-ray data`)")
    require_emotions(cfg)
    t0 = time.perf_counter()
    key = STAGE.key(cfg)
    prep_dir = out / "prepared"
    summary = run_task(prepare, rc.encode_resources, cfg.with_absolute_paths(), prep_dir)
    t_prep = time.perf_counter() - t0

    name = f"{rc.name}-{key}"  # same config → same run → resume from its latest checkpoint
    if force:
        shutil.rmtree(out / "ray" / name, ignore_errors=True)
    pretrained = _pretrain(cfg, key, prep_dir, force) if rc.pretrain_epochs else None
    init = pretrained and pretrained["dir"]
    run = _train_run(cfg, name, prep_dir, rc.lr, rc.epochs, callbacks, init=init)
    _, checkpoint = fit_run(run)
    t_train = time.perf_counter() - t0 - t_prep

    state = read_state(checkpoint)
    copy_model(checkpoint, out)  # → out/model.pt, the best epoch by validation loss
    splits = ("valid", "test") if evaluate_test else ("valid",)
    metrics = run_task(evaluate_model, rc.encode_resources, out, rc, splits, cfg.offline)
    history = state["history"]
    meta = {
        "variant": rc.variant,
        "name": rc.name,
        "backbone": rc.backbone,
        "recommender": cfg.to_dict()["recommender"],
        "text_dim": summary["text_dim"],
        "emotions_source": summary["emotions_source"],
        "best_epoch": state["best"]["epoch"],
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return STAGE.write_manifest(
        cfg,
        variant=rc.variant,
        model=rc.name,
        backbone=rc.backbone,
        pretrain=pretrained and {k: v for k, v in pretrained.items() if k != "history"},
        counts=summary["counts"],
        emotions_source=summary["emotions_source"],
        best_epoch=state["best"]["epoch"],
        epochs=len(history),
        test=metrics.get("test"),
        seconds={
            "prepare": round(t_prep, 1),
            "fit": round(t_train, 1),
            "total": round(time.perf_counter() - t0, 1),
            # over every invocation of this Ray run (a resumed run's `fit` covers only its own part)
            "epochs_sum": round(sum(h["epoch_seconds"] for h in history), 1),
        },
        peak_rss_mb={
            "driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "worker": max((h.get("peak_rss_mb", 0) for h in history), default=0),
        },
        ray_run=str(out / "ray" / name),
    )


def _train_run(
    cfg: Config, name: str, prep_dir: Path, lr: float, epochs: int, callbacks: list | None = None, **config
) -> TrainRun:
    """The Ray Train run of RecommenderTask under <variant>/ray/`name` (recommendation, or with `phase="pretrain"`
    the prompt pre-training); `config` goes to the Task (`init`, `phase`)."""
    rc = cfg.recommender
    return TrainRun(
        task="ecr_ray.recommender.train:RecommenderTask",
        name=name,
        storage=output_dir(cfg) / "ray",
        resources=rc.train_resources,
        max_failures=rc.max_failures,
        callbacks=callbacks,
        force_cpu=cfg.force_cpu,
        settings=LoopSettings(
            precision=precision_of(rc.dtype),
            lr=lr,
            weight_decay=rc.weight_decay,
            epochs=epochs,
            warmup_fraction=rc.warmup_fraction,
            micro_batch=max(1, rc.batch_size // rc.train_resources.workers),
            deepspeed=rc.deepspeed,
            select=(rc.select_by, SELECT_BY[rc.select_by]),
            log_every=rc.log_every,
        ),
        config={
            "cfg": cfg.with_absolute_paths().to_dict(),
            "seed": cfg.seed,
            "prep_dir": str(prep_dir),
            **config,
        },
    )


def _pretrain(cfg: Config, key: str, prep_dir: Path, force: bool) -> dict:
    """UniCRS's prompt pre-training as its own Ray Train run of the same Task (phase `pretrain`): trained once per
    stage key, resumed like any run; its best epoch goes to <variant>/pretrain/. Returns {dir, key, best_epoch,
    epochs, seconds, history}."""
    rc = cfg.recommender
    out = output_dir(cfg)
    dest, name = out / "pretrain", f"{rc.name}-{key}-pretrain"
    done = dest / "pretrain.json"
    if force:
        shutil.rmtree(out / "ray" / name, ignore_errors=True)
    elif done.exists() and json.loads(done.read_text()).get("key") == key and (dest / "model.pt").exists():
        return json.loads(done.read_text())
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    run = _train_run(cfg, name, prep_dir, rc.pretrain_lr, rc.pretrain_epochs, phase="pretrain")
    _, checkpoint = fit_run(run)
    state = read_state(checkpoint)
    copy_model(checkpoint, dest)
    summary = {
        "dir": str(dest),
        "key": key,
        "best_epoch": state["best"]["epoch"],
        "epochs": len(state["history"]),
        "seconds": round(time.perf_counter() - t0, 1),
        "history": state["history"],
    }
    done.write_text(json.dumps(summary, indent=2))
    return summary


STAGE = Stage(
    "recommender",
    "recommender",
    "recommender/{variant}",
    reads=(
        "recommender.-train_resources",
        "recommender.-encode_resources",
        "recommender.-cache_dir",
        "recommender.-max_failures",
        "recommender.-log_every",
        "emotion.threshold",
        "emotion.max_emotions_per_entity",
        "seed",
    ),
    writes=("model.pt", "metrics.json"),
    fit=fit,
    jobs=("train_recommender", "evaluate_recommender"),  # the report reads saved predictions: no Ray work
    resources={"train_recommender": ("recommender.train_resources", "recommender.encode_resources")},
    after=(tables.STAGE, emotion_train.STAGE),
    reports=("eval/recommender.md",),
    # 2: mention ages and the `new` protocol's flags in the prepared tensors and test predictions, UniCRS's
    # pre-training samples
    version=2,
)
