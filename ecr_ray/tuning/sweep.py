"""Running the Appendix B sweeps on Ray Tune: one trial per setting, each a small driver function.

A feedback trial builds its own TorchTrainer (Train V2 pattern) reporting each epoch to Tune through
`TuneReportCallback`, then reports its kept model's validation and test metrics itself (`ray.tune.report` from the
driver: the callback's reports reach Tune through a queue the trial's main thread drains while the driver runs, so
this one comes last); a knowledge trial trains (optionally) and generates through Ray tasks. Trial drivers reserve
only `tune.driver_cpus`, so that the trial's own workers get the cores. Rerunning the same sweep resumes it
(`Tuner.restore`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..config import Config, config_from_dict
from ..data.linker import EntityLinker
from ..data.tables import load_dataset_kg
from ..emotion.model import model_dir
from ..generator.evaluate import generate, predict_emotions, test_contexts
from ..generator.train import fit as train_generator
from ..recommender.data import require_emotions
from ..recommender.evaluate import paired_bootstrap
from ..recommender.train import fit, output_dir
from ..reviews.knowledge import load_knowledge
from ..runtime import check_fits, run_task
from ..scoring import offline_metrics
from . import space

log = logging.getLogger(__name__)

SHARED_INPUTS = ("tables", "emotions", "reviews")


def trial_config(base: dict, trial_dir: Path, overrides: dict, shared: tuple[str, ...] = SHARED_INPUTS) -> Config:
    """The base config with this trial's values, writing under the trial's own run dir. The inputs (tables,
    emotions, reviews) are linked from the base run and the recommender's text-embedding cache is shared."""
    base_run = Path(base["run_dir"]).resolve()
    run = trial_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    for name in shared:
        link, target = run / name, base_run / name
        if target.exists() and not link.exists():
            link.symlink_to(target, target_is_directory=True)
    d = json.loads(json.dumps(base))
    d["run_dir"] = str(run)
    d["recommender"]["cache_dir"] = d["recommender"].get("cache_dir") or str(base_run / "recommender" / "cache")
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        d[section][key] = value
    return config_from_dict(d)


def _trial_dir(config: dict) -> Path:
    """`<run_dir>/tune/<sweep>/trials/<trial name>`: outside Tune's own (synced, per-session) trial folders, and the
    same after `Tuner.restore`, so an interrupted trial's Train run resumes from its checkpoints."""
    import ray.tune

    name = ray.tune.get_context().get_trial_name()
    return Path(config["base"]["run_dir"]).resolve() / "tune" / config["sweep"] / "trials" / name


def feedback_trial(config: dict) -> None:
    """One Tune trial: train the recommender with these feedback weights to its last epoch. Tune sees every epoch's
    validation metrics through the Train run's callback, then one final report (`kept_model_report`): the metrics of
    the model the training keeps (best epoch by validation loss), on validation and, with `tune.evaluate_test`, on
    test."""
    import ray.tune

    cfg = trial_config(config["base"], _trial_dir(config), {"recommender.feedback_weights": config["weights"]})
    manifest = fit(cfg, callbacks=[epoch_reports_to_tune()], evaluate_test=cfg.tune.evaluate_test)
    ray.tune.report(kept_model_report(output_dir(cfg), manifest))


def epoch_reports_to_tune():
    """Ray's `TuneReportCallback`, forwarding only the Train run's epoch reports (those with validation metrics).
    The loop also reports progress mid-epoch (every `log_every` steps); in Tune such a row would fail the
    objective's metric check and count as a training iteration (ASHA's epochs)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    metric = space.OBJECTIVES["feedback"]["metric"]

    class EpochReports(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if metrics and metric in metrics[0]:
                super().after_report(run_context, metrics, checkpoint)

    return EpochReports()


def kept_model_report(out: Path, manifest: dict) -> dict:
    """`valid_*` / `test_*` metrics of the kept model (the recommender's metrics.json), `best_epoch`, `epochs_run`."""
    scores = json.loads((out / "metrics.json").read_text())
    report = {"best_epoch": manifest["best_epoch"], "epochs_run": manifest["epochs"]}
    for split, m in scores.items():
        report.update({f"{split}_{k}": float(m[k]) for k in space.RECOMMENDER_METRICS if k in m})
    return report


def knowledge_trial(config: dict) -> None:
    """One Tune trial: (optionally fine-tune with and) generate with this knowledge setting (pn_t, pn_e, format) on
    validation contexts; report the generator's offline metrics."""
    import ray.tune

    k = config["knowledge"]
    steps = config["base"]["tune"]["knowledge_train_steps"]
    # Without training steps every trial scores the base run's adapter: link it instead of training one.
    shared = SHARED_INPUTS if steps else (*SHARED_INPUTS, "generator")
    cfg = trial_config(
        config["base"], _trial_dir(config), {f"generator.{p}": k[p] for p in space.KNOWLEDGE_KEYS}, shared
    )
    ray.tune.report(evaluate_knowledge(cfg, cfg.tune.knowledge_eval_samples, steps))


def evaluate_knowledge(cfg: Config, n: int, train_steps: int) -> dict:
    """Generate for `n` validation contexts with this config's knowledge format (after `train_steps` LoRA steps
    with that format, if any) and return the offline metrics of ecr_ray.scoring. Training, generation and emotion
    classification run on Ray Train / Ray tasks with the recipe's resources, not in the trial."""
    if train_steps:
        cfg.generator.max_steps = train_steps
        train_generator(cfg)
    contexts = test_contexts(cfg.run_path / "tables" / "samples.parquet", n, cfg.seed, split="valid")
    # the generator's own replies, before the reply guard: B.2 compares what each knowledge setting makes it write
    texts = [r["generated"] for r in run_task(generate, cfg.generator.eval_resources, cfg, contexts)]
    probs = None
    if (model_dir(cfg) / "meta.json").exists():  # without a classifier in this run the metric is left out
        probs = run_task(predict_emotions, cfg.emotion.label_resources, str(model_dir(cfg)), {"m": texts})["m"]
    kg = load_dataset_kg(cfg)
    return offline_metrics(
        texts, [c["target_item"] for c in contexts], kg, EntityLinker.from_kg(kg), load_knowledge(cfg.run_path), probs
    )


def paired_vs_uniform(exp_dir: Path) -> list[dict]:
    """Each feedback setting's kept model against the uniform weights' (1.0, 1.0, 1.0) on the same test samples:
    paired bootstrap differences (`recommender.evaluate.paired_bootstrap`: global AUC, RT@50, ECR's per-batch AUC)
    from the trials' saved test predictions. Empty without a uniform trial or without test predictions."""
    preds = {}
    for meta in exp_dir.glob("trials/*/run/recommender/*/meta.json"):
        npz = meta.parent / "test_predictions.npz"
        if npz.exists():
            w = json.loads(meta.read_text())["recommender"]["feedback_weights"]
            preds[tuple(float(w[k]) for k in space.FEEDBACK_KEYS)] = dict(np.load(npz))
    uniform = preds.pop((1.0, 1.0, 1.0), None)
    if uniform is None:
        return []
    return [{**dict(zip(space.FEEDBACK_KEYS, k)), **paired_bootstrap(uniform, p)} for k, p in sorted(preds.items())]


def run_sweep(cfg: Config, sweep: str) -> dict:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    exp_root = cfg.run_path / "tune"
    exp_dir = exp_root / sweep
    obj = space.OBJECTIVES[sweep]
    if sweep == "feedback":
        grid = space.feedback_space(cfg.tune.search_space.get("feedback"), cfg.tune.full_grid)
        trainable, param_space = feedback_trial, {"weights": tune.grid_search(grid)}
        # Not the paper's protocol (it trains every setting to the end), an option. A trial reports epochs + 1 times
        # (each epoch, then its kept model): a max_t past that never stops a trial before its driver reports.
        scheduler = (
            ASHAScheduler(
                time_attr="training_iteration", max_t=cfg.recommender.epochs + 2, grace_period=cfg.tune.grace_period
            )
            if cfg.tune.scheduler == "asha"
            else None
        )
    else:
        grid = space.knowledge_space(cfg.tune.search_space.get("knowledge"))
        trainable, param_space, scheduler = knowledge_trial, {"knowledge": tune.grid_search(grid)}, None
    param_space["base"] = cfg.with_absolute_paths().to_dict()  # trials run in their own working directories
    param_space["sweep"] = sweep

    if sweep == "feedback":
        require_emotions(cfg)  # every trial reads the base run's emotions: fail before any trial starts
        needs = {
            "recommender.train_resources": cfg.recommender.train_resources,
            "recommender.encode_resources": cfg.recommender.encode_resources,
        }
    else:
        needs = {
            "generator.eval_resources": cfg.generator.eval_resources,
            **({"generator.train_resources": cfg.generator.train_resources} if cfg.tune.knowledge_train_steps else {}),
        }
    check_fits(needs, beside=cfg.tune.driver_cpus, what="tune: ")
    trainable = tune.with_resources(trainable, {"cpu": cfg.tune.driver_cpus})
    path = str(exp_dir / "ray")
    if tune.Tuner.can_restore(path):  # an interrupted sweep: finish the missing trials, keep the done ones
        log.info("tune: resuming %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True, param_space=param_space)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=obj["metric"],
                mode=obj["mode"],
                scheduler=scheduler,
                max_concurrent_trials=cfg.tune.max_concurrent_trials,
            ),
            run_config=tune.RunConfig(name="ray", storage_path=str(exp_dir)),
        )
    grid = tuner.fit()

    failed = [f"{r.path}: {r.error}" for r in grid if r.error is not None]
    if failed:  # a crashed trial's partial metrics are not a result; rerunning the sweep retries only these
        raise RuntimeError(f"{len(failed)} of {len(grid)} trials failed:\n" + "\n".join(failed))
    rows = []
    for result in grid:
        m = result.metrics or {}
        if sweep == "feedback":
            kept = "best_epoch" in m  # the final report came: the kept model's metrics (else ASHA stopped it)
            row = {
                **result.config["weights"],
                "best_epoch": m.get("best_epoch"),
                "epochs_run": m["epochs_run"] if kept else m.get("training_iteration"),
                "stopped_early": not kept,
            }
        else:
            row = dict(result.config["knowledge"])
        rows.append({**row, **{k: m[k] for k in obj["report"] if k in m}})
    order = {
        "feedback": lambda r: tuple(r[k] for k in space.FEEDBACK_KEYS),
        "knowledge": lambda r: (r["knowledge_format"] != "triples", r["num_triples"], r["num_review_entities"]),
    }[sweep]
    rows.sort(key=order)
    csv_path, md_path = space.write_results(rows, exp_dir, sweep)
    if sweep == "feedback":
        with open(md_path, "a") as f:
            f.write(space.paired_markdown(paired_vs_uniform(exp_dir)))
    png = space.plot(rows, exp_dir, sweep)
    best = space.best_row(rows, sweep)
    recipe = space.write_best_recipe(best, cfg.recipe, exp_dir, sweep)
    return {
        "sweep": sweep,
        "trials": len(rows),
        "best": best,
        "results_csv": str(csv_path),
        "results_md": str(md_path),
        "plot": str(png),
        "best_recipe": str(recipe),
    }
