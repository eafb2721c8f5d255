"""Train the emotion-aware recommender with Ray Train (checkpoint per epoch, resumable); evaluate test once.

Writes run_dir/recommender/<variant>/: model.pt (best on validation loss), meta.json, history.json, metrics.json,
manifest.json, prepared/ (tensors the workers read) and ray/ (Ray Train run with the per-epoch checkpoints).
Rerunning with the same config resumes the Ray Train run from its latest checkpoint; a finished run is skipped.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import time
from pathlib import Path

from ecr_ray.cli import run_job
from ecr_ray.config import Config, RecommenderConfig

from ._common import parse, print_json


def _file_hash(path: Path) -> str | None:
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _latest_checkpoint(run: Path):
    """The newest epoch checkpoint of a Ray Train run directory (a resumed, already finished run reports none)."""
    from ray.train import Checkpoint

    done = sorted(p for p in run.glob("checkpoint_*") if (p / "best_model.pt").exists())
    return Checkpoint.from_directory(str(done[-1])) if done else None


def output_dir(cfg: Config) -> Path:
    return cfg.run_path / "recommender" / cfg.recommender.variant


def train(cfg: Config, force: bool = False, compile_shm: bool = True, callbacks: list | None = None,
          evaluate_test: bool = True, **loop_extra) -> dict:
    """Prepare tensors, fit under Ray Train, pick the best epoch, evaluate valid + test. Returns the manifest.
    `compile_shm=False` skips DeepSpeed's shm-comm op build (tests); `callbacks` go to the Train RunConfig (Tune's
    TuneReportCallback in sweeps, which set `evaluate_test=False`: they select on validation only);
    `loop_extra` goes to the worker loop config."""
    import ray
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ecr_ray.models.recommender_data import prepare
    from ecr_ray.models.recommender_train import train_loop

    t0 = time.perf_counter()
    rc = cfg.recommender
    out = output_dir(cfg)
    inputs = {"tables": _file_hash(cfg.run_path / "tables" / "manifest.json"),
              "entity_emotions": _file_hash(cfg.run_path / "emotions" / "entity_emotions.parquet")}
    if inputs["tables"] is None:
        raise FileNotFoundError(f"{cfg.run_path / 'tables'} not found: build the tables first (`ecr-ray data`)")
    config_hash = cfg.section_hash("recommender", "data", "emotion", "seed")
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not force:
        old = json.loads(manifest_path.read_text())
        if old.get("config_hash") == config_hash and old.get("inputs") == inputs:
            return {**old, "skipped": True}

    prep_dir = out / "prepared"
    summary = prepare(cfg, prep_dir)
    t_prep = time.perf_counter() - t0

    if not ray.is_initialized():
        ray.init(include_dashboard=True, log_to_driver=True)
    name = f"{rc.variant}-{config_hash}"  # same config → same run → resume from its latest checkpoint
    if force:
        shutil.rmtree(out / "ray" / name, ignore_errors=True)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"recommender": cfg.to_dict()["recommender"], "prep_dir": str(prep_dir), "seed": cfg.seed,
                           "compile_shm": compile_shm, **loop_extra},
        scaling_config=ScalingConfig(num_workers=rc.num_workers, use_gpu=rc.use_gpu,
                                     resources_per_worker={"CPU": rc.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=str(out / "ray"),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=rc.max_failures),
                             callbacks=callbacks),
    )
    result = trainer.fit()
    checkpoint = result.checkpoint or _latest_checkpoint(out / "ray" / name)
    if checkpoint is None:
        raise RuntimeError(f"Ray Train run {name} finished without a checkpoint (error: {result.error})")
    t_train = time.perf_counter() - t0 - t_prep

    with checkpoint.as_directory() as d:
        shutil.copy(Path(d) / "best_model.pt", out / "model.pt")
        state = torch.load(Path(d) / "state.pt", weights_only=False)["state"]
    metrics = evaluate_model(out, rc, ("valid", "test") if evaluate_test else ("valid",))
    worker_rss = max((h.get("peak_rss_mb", 0) for h in state["history"]), default=0)
    meta = {"variant": rc.variant, "recommender": cfg.to_dict()["recommender"], "text_dim": summary["text_dim"],
            "emotions_source": summary["emotions_source"], "best_epoch": state["best_epoch"]}
    manifest = {
        "stage": "recommender", "variant": rc.variant, "config_hash": config_hash, "inputs": inputs,
        "counts": summary["counts"], "emotions_source": summary["emotions_source"],
        "best_epoch": state["best_epoch"], "epochs": len(state["history"]), "test": metrics.get("test"),
        "seconds": {"prepare": round(t_prep, 1), "fit": round(t_train, 1),
                    "total": round(time.perf_counter() - t0, 1),
                    # over every invocation of this Ray run (a resumed run's `fit` covers only its own part)
                    "epochs_sum": round(sum(h["epoch_seconds"] for h in state["history"]), 1)},
        "peak_rss_mb": {"driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "worker": worker_rss},
        "ray_run": str(out / "ray" / name),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    (out / "history.json").write_text(json.dumps(state["history"], indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest


def evaluate_model(out: Path, rc: RecommenderConfig, splits: tuple[str, ...] = ("valid", "test")) -> dict:
    """Score valid and test with the selected model (test once per training run); per-sample test predictions go to
    test_predictions.npz for paired comparisons between variants."""
    import numpy as np
    import torch

    from ecr_ray.models.recommender import build_model, score_split
    from ecr_ray.models.recommender_train import load_batchers

    prep, data = load_batchers(out / "prepared", splits)
    model = build_model(rc, prep["graph"], prep["meta"]["text_dim"])
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    metrics = {}
    for split in splits:
        loss, ce, acc = score_split(model, data[split], auc_batch_size=rc.auc_batch_size)
        metrics[split] = {"loss": loss, "ce": ce, **acc.compute()}
    if "test" not in splits:
        return metrics
    np.savez(out / "test_predictions.npz", prob=np.concatenate(acc.probs), rank=np.concatenate(acc.ranks),
             rank_norep=np.concatenate(acc.ranks_norep), liked=np.concatenate(acc.liked),
             sample_id=data["test"].s.sample_ids)
    return metrics


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__, argv,
                      lambda p: p.add_argument("--force", action="store_true", help="retrain even if up to date"))
    manifest = train(cfg, force=args.force)
    print_json(manifest)
    print(f"recommender written to {output_dir(cfg)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
