"""How good a trained recommender is: the validation/test pass (Recall@k, Recall_True@k, ECR's per-batch AUC and a
global AUC), the per-sample test predictions, and the report of every variant of a run beside the paper's Tables 1
and 3 with paired bootstrap intervals against `baseline`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import RECOMMENDER_VARIANTS, Config, RecommenderConfig
from .data import Batcher, load_batchers, to_device
from .model import build_model, load_saved, weighted_loss


@torch.no_grad()
def score_split(model, batcher: Batcher, batch_size: int = 128, auc_batch_size: int = 32):
    """Evaluation pass in sample order → (mean weighted loss, mean plain CE, RankingAccumulator)."""
    from ..metrics import RankingAccumulator

    model.eval()
    device = next(model.parameters()).device
    E = model.entity_reps()
    acc = RankingAccumulator(len(model.item_ids), auc_batch_size)
    s = batcher.s
    tot_w, tot = 0.0, 0.0
    for start in range(0, len(batcher), batch_size):
        idx = np.arange(start, min(start + batch_size, len(batcher)))
        b = to_device(batcher.batch(idx), device)
        scores = model(b, entity_reps=E).float()
        tot_w += float(weighted_loss(scores, b["target"], b["weight"])) * len(idx)
        tot += float(F.cross_entropy(scores, b["target"], reduction="sum"))
        ctx = [np.unique(_items_in(s.entities[i], model)) for i in idx]
        acc.add(scores.cpu().numpy(), s.target[idx], s.liked[idx], ctx)
    n = max(len(batcher), 1)
    return tot_w / n, tot / n, acc


def _items_in(entities: np.ndarray, model) -> np.ndarray:
    """Item indices of the context entities (for the no-repetition Recall)."""
    lookup = getattr(model, "_item_lookup", None)
    if lookup is None:
        ids = model.item_ids.cpu().numpy()
        lookup = np.full(int(ids.max()) + 2, -1, np.int64)
        lookup[ids] = np.arange(len(ids))
        model._item_lookup = lookup
    e = entities[(entities >= 0) & (entities < len(lookup))]
    it = lookup[e]
    return it[it >= 0]


def evaluate_model(
    out: Path, rc: RecommenderConfig, splits: tuple[str, ...] = ("valid", "test"), offline: bool = False
) -> dict:
    """Score valid and test with the selected model (test once per training run); per-sample test predictions go to
    test_predictions.npz for paired comparisons between variants. Runs as a Ray task (`encode_resources`)."""
    from ..hub import device

    prep, data = load_batchers(out / "prepared", splits)
    model = build_model(rc, prep["graph"], prep["meta"]["text_dim"], offline)
    load_saved(model, out / "model.pt")
    model.to(device(rc.device))
    metrics = {}
    for split in splits:
        loss, ce, acc = score_split(model, data[split], auc_batch_size=rc.auc_batch_size)
        metrics[split] = {"loss": loss, "ce": ce, **acc.compute()}
    if "test" not in splits:
        return metrics
    np.savez(
        out / "test_predictions.npz",
        prob=np.concatenate(acc.probs),
        rank=np.concatenate(acc.ranks),
        rank_norep=np.concatenate(acc.ranks_norep),
        liked=np.concatenate(acc.liked),
        sample_id=data["test"].s.sample_ids,
    )
    return metrics


# ----------------------------------------------------------------------------- the report of a run's variants

# Paper Table 1 (UniCRS, ECR) and Table 3 (ablations; RT@1/R@1 are not reported there).
PAPER = {
    "baseline": {
        "label": "UniCRS",
        "auc": 0.506,
        "rt@1": 0.052,
        "rt@10": 0.229,
        "rt@50": 0.439,
        "r@1": 0.047,
        "r@10": 0.212,
        "r@50": 0.414,
    },
    "L": {"label": "ECR[L]", "auc": 0.535, "rt@10": 0.229, "rt@50": 0.444, "r@10": 0.213, "r@50": 0.420},
    "LS": {"label": "ECR[LS]", "auc": 0.541, "rt@10": 0.232, "rt@50": 0.442, "r@10": 0.216, "r@50": 0.420},
    "LG": {"label": "ECR[LG]", "auc": 0.535, "rt@10": 0.232, "rt@50": 0.453, "r@10": 0.216, "r@50": 0.428},
    "full": {
        "label": "ECR",
        "auc": 0.541,
        "rt@1": 0.055,
        "rt@10": 0.238,
        "rt@50": 0.452,
        "r@1": 0.049,
        "r@10": 0.220,
        "r@50": 0.428,
    },
}
COLS = ("auc", "auc_global", "rt@1", "rt@10", "rt@50", "r@1", "r@10", "r@50", "r@10_norep", "r@50_norep")


def collect(run_dir: Path) -> dict[str, dict]:
    out = {}
    for v in RECOMMENDER_VARIANTS:
        d = run_dir / "recommender" / v
        if (d / "metrics.json").exists():
            if not (d / "test_predictions.npz").exists():
                raise FileNotFoundError(
                    f"{d / 'test_predictions.npz'} missing (a run from an older version): "
                    f"retrain with `ecr-ray train_recommender --recommender.variant {v} --force`"
                )
            out[v] = {
                "metrics": json.loads((d / "metrics.json").read_text()),
                "pred": dict(np.load(d / "test_predictions.npz")),
                "history": json.loads((d / "history.json").read_text()),
                "manifest": json.loads((d / "manifest.json").read_text()),
            }
    return out


def paired_bootstrap(base: dict, other: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Difference other − baseline on the same test samples, with a 95% paired-bootstrap interval, for the global
    AUC and RT@50 (ECR's per-batch AUC is not resampled: it depends on the batch order)."""
    from ecr_ray.metrics import global_auc

    if not np.array_equal(base["sample_id"], other["sample_id"]):
        return {}
    rng = np.random.default_rng(seed)
    n = len(base["liked"])

    def stats(idx):
        liked = base["liked"][idx]
        like = liked == 1
        return (
            global_auc(other["prob"][idx], liked) - global_auc(base["prob"][idx], liked),
            float((other["rank"][idx][like] < 50).mean() - (base["rank"][idx][like] < 50).mean()),
        )

    point = stats(np.arange(n))
    boots = np.array([stats(rng.integers(0, n, n)) for _ in range(n_boot)])
    out = {}
    for j, name in enumerate(("auc_global", "rt@50")):
        lo, hi = np.nanpercentile(boots[:, j], [2.5, 97.5])
        out[name] = {"diff": point[j], "ci95": [float(lo), float(hi)]}
    # ECR's AUC: the per-batch differences (same batches for both models), resampled over batches
    d = per_batch_auc(other["prob"], base["liked"]) - per_batch_auc(base["prob"], base["liked"])
    d = d[~np.isnan(d)]
    if len(d):
        boots = [rng.choice(d, len(d)).mean() for _ in range(n_boot)]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        out["auc"] = {"diff": float(d.mean()), "ci95": [float(lo), float(hi)], "batches": int(len(d))}
    return out


def per_batch_auc(probs: np.ndarray, liked: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """ECR's AUC of each evaluation batch (NaN where a batch lacks liked or disliked samples)."""
    from ecr_ray.metrics import ecr_auc

    return np.array(
        [
            ecr_auc(probs[s : s + batch_size], liked[s : s + batch_size], batch_size)
            for s in range(0, len(probs), batch_size)
        ]
    )


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(runs: dict[str, dict], cfg: Config) -> str:
    head = (
        "| model | "
        + " | ".join(c.upper().replace("_NOREP", " norep").replace("AUC_GLOBAL", "AUC global") for c in COLS)
        + " | Σ epoch s | wall s | peak RSS MB | emotions |"
    )
    lines = [
        f"Recommendation on {cfg.data.dataset} test ({cfg.recipe} recipe, run_dir {cfg.run_path}).",
        "",
        head,
        "|" + "---|" * (len(COLS) + 5),
    ]
    for v, r in runs.items():
        p = PAPER[v]
        lines.append(f"| paper {p['label']} | " + " | ".join(_fmt(p.get(c)) for c in COLS) + " | | | | |")
        t, m = r["metrics"]["test"], r["manifest"]
        rss = max(m["peak_rss_mb"].values())
        lines.append(
            f"| ours {v} | "
            + " | ".join(_fmt(t.get(c)) for c in COLS)
            + f" | {sum(h['epoch_seconds'] for h in r['history']):.0f} | {m['seconds']['total']:.0f} | {rss:.0f}"
            f" | {m['emotions_source']} |"
        )
    lines += [
        "",
        "Σ epoch s = training + validation time summed over epochs (across resumes); wall s = this "
        "train_recommender invocation (prepare + fit + evaluation).",
        "AUC = ECR's per-batch (32) AUC; AUC global = scikit-learn ROC-AUC over all liked/disliked test "
        "samples; norep = items already mentioned in the context removed from the ranking.",
    ]
    return "\n".join(lines) + "\n"


def plots(runs: dict[str, dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for v, r in runs.items():
        h = r["history"]
        ep = [x["epoch"] for x in h]
        axes[0].plot(ep, [x["train_loss"] for x in h], marker="o", label=v)
        axes[1].plot(ep, [x["valid_ce"] for x in h], marker="o", label=v)
        axes[2].plot(ep, [x.get("valid_r@50", float("nan")) for x in h], marker="o", label=v)
    for ax, t in zip(axes, ("train loss (weighted CE)", "valid CE (unweighted)", "valid R@50")):
        ax.set_title(t)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    curves = out / "recommender_curves.png"
    fig.savefig(curves, dpi=110)
    plt.close(fig)

    metrics = ("auc", "auc_global", "rt@50", "r@50")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(len(runs), 1)
    for i, (v, r) in enumerate(runs.items()):
        vals = [r["metrics"]["test"].get(m, float("nan")) for m in metrics]
        ax.bar([j + i * width for j in range(len(metrics))], vals, width, label=v)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.axhline(0.5, color="grey", lw=0.6, ls="--")
    ax.set_title("test metrics by variant")
    ax.legend()
    fig.tight_layout()
    bars = out / "recommender_ablation.png"
    fig.savefig(bars, dpi=110)
    plt.close(fig)
    return [str(curves), str(bars)]


def write_report(cfg: Config) -> dict:
    runs = collect(cfg.run_path)
    if not runs:
        raise FileNotFoundError(
            f"no trained recommender under {cfg.run_path / 'recommender'}: "
            f"run `ecr-ray train_recommender --recipe {cfg.recipe}` first"
        )
    out = cfg.run_path / "eval"
    out.mkdir(parents=True, exist_ok=True)
    report = {
        v: {
            "test": r["metrics"]["test"],
            "valid": r["metrics"]["valid"],
            "paper": PAPER[v],
            "seconds": r["manifest"]["seconds"],
            "peak_rss_mb": r["manifest"]["peak_rss_mb"],
            "emotions_source": r["manifest"]["emotions_source"],
            "best_epoch": r["manifest"]["best_epoch"],
        }
        for v, r in runs.items()
    }
    if "baseline" in runs:
        for v, r in runs.items():
            if v != "baseline":
                report[v]["vs_baseline"] = paired_bootstrap(runs["baseline"]["pred"], r["pred"])
    (out / "recommender.json").write_text(json.dumps(report, indent=2))
    md = markdown(runs, cfg)
    diffs = [(v, r["vs_baseline"]) for v, r in report.items() if r.get("vs_baseline")]
    if diffs:
        md += "\nPaired bootstrap vs baseline (same test samples, 1000 resamples, 95% interval):\n\n"
        md += "| variant | Δ AUC (ECR, batches resampled) | Δ AUC global | Δ RT@50 |\n|---|---|---|---|\n"
        for v, d in diffs:
            md += (
                f"| {v} | "
                + " | ".join(
                    f"{d[k]['diff']:+.3f} [{d[k]['ci95'][0]:+.3f}, {d[k]['ci95'][1]:+.3f}]" if k in d else "–"
                    for k in ("auc", "auc_global", "rt@50")
                )
                + " |\n"
            )
    (out / "recommender.md").write_text(md)
    files = plots(runs, out)
    return {
        "variants": list(runs),
        "markdown": str(out / "recommender.md"),
        "json": str(out / "recommender.json"),
        "plots": files,
        "table": md,
    }
