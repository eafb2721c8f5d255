"""How good a trained recommender is: the validation/test pass (Recall@k, Recall_True@k, ECR's per-batch AUC and a
global AUC), the per-sample test predictions, the two rankings every model must beat (popularity, repeat), and the
report of every model of a run on three protocols (paper, new, norep) beside the paper's Tables 1 and 3, with paired
bootstrap intervals against `baseline` and against the two rankings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import RECOMMENDER_VARIANTS, Config, RecommenderConfig
from ..hub import device
from ..metrics import KS, RankingAccumulator, ecr_auc, global_auc
from .data import Batcher, Split, load_batchers, to_device
from .model import build_model, load_saved, weighted_loss


def item_lookup(item_ids: np.ndarray) -> np.ndarray:
    """Entity id → item index (-1: not an item), for entity ids up to the largest item's."""
    lookup = np.full(int(item_ids.max()) + 2, -1, np.int64)
    lookup[item_ids] = np.arange(len(item_ids))
    return lookup


def items_in(entities: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Item indices of a sample's context entities (for the no-repetition Recall)."""
    e = entities[(entities >= 0) & (entities < len(lookup))]
    it = lookup[e]
    return np.unique(it[it >= 0])


@torch.no_grad()
def score_split(model, batcher: Batcher, batch_size: int = 128, auc_batch_size: int = 32):
    """Evaluation pass in sample order → (mean weighted loss, mean plain CE, RankingAccumulator). A model in prompt
    pre-training mode scores every entity: its ranks are over entities, without `norep` / `new`."""
    model.eval()
    device = next(model.parameters()).device
    E = model.entity_reps()
    pretraining = getattr(model, "pretraining", False)
    acc = RankingAccumulator(len(E) if pretraining else len(model.item_ids), auc_batch_size)
    lookup = item_lookup(model.item_ids.cpu().numpy())
    s = batcher.s
    tot_w, tot = 0.0, 0.0
    for start in range(0, len(batcher), batch_size):
        idx = np.arange(start, min(start + batch_size, len(batcher)))
        b = to_device(batcher.batch(idx), device)
        scores = model(b, entity_reps=E).float()
        tot_w += float(weighted_loss(scores, b["target"], b["weight"])) * len(idx)
        tot += float(F.cross_entropy(scores, b["target"], reduction="sum"))
        if pretraining:
            acc.add(scores.cpu().numpy(), s.target[idx], s.liked[idx])
        else:
            ctx = [items_in(s.entities[i], lookup) for i in idx]
            acc.add(scores.cpu().numpy(), s.target[idx], s.liked[idx], ctx, s.repeat[idx])
    n = max(len(batcher), 1)
    return tot_w / n, tot / n, acc


def predictions(acc: RankingAccumulator, split: Split) -> dict[str, np.ndarray]:
    """The per-sample test predictions paired comparisons read (test_predictions.npz): ranks (plain and `norep`),
    the target's probability (not for the baselines' rankings), the feedback, the `new` protocol's flag."""
    out = {
        "rank": np.concatenate(acc.ranks),
        "rank_norep": np.concatenate(acc.ranks_norep),
        "liked": np.concatenate(acc.liked),
        "repeat": np.concatenate(acc.repeat),
        "sample_id": split.sample_ids,
    }
    return out


def evaluate_model(
    out: Path, rc: RecommenderConfig, splits: tuple[str, ...] = ("valid", "test"), offline: bool = False
) -> dict:
    """Score valid and test with the selected model (test once per training run); per-sample test predictions go to
    test_predictions.npz for paired comparisons between models. Runs as a Ray task (`encode_resources`)."""
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
    np.savez(out / "test_predictions.npz", prob=np.concatenate(acc.probs), **predictions(acc, data["test"].s))
    return metrics


# ----------------------------------------------------------------------------- the rankings every model must beat

BASELINES = ("popularity", "repeat")
"""popularity: items by how many train-split turns name them. repeat: the items already mentioned in the dialogue,
most recently mentioned first (Kostric & Balog's "naive" ranking), then the rest by popularity."""


def baseline_scores(name: str, split: Split, idx: np.ndarray, counts: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """[len(idx), n_items] scores of ranking `name` for samples `idx`. Ties are broken by item index (lower first),
    so no ranking gains from the metrics' pessimistic ties."""
    n = len(counts)
    pop = counts.astype(np.float64) + 0.5 * (1.0 - np.arange(n) / n)
    scores = np.tile(pop, (len(idx), 1))
    if name == "popularity":
        return scores
    if name != "repeat":
        raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
    top = pop.max() + 1.0
    L = split.entities.shape[1]
    for row, i in enumerate(idx):
        for j in range(L):  # within a turn, later slots (later first mentions) first
            e = split.entities[i, j]
            item = lookup[e] if 0 <= e < len(lookup) else -1
            if item >= 0:
                scores[row, item] = top + (10_000 - max(int(split.ent_age[i, j]), 0)) * L + j
    return scores


def baseline_predictions(prep_dir: Path, auc_batch_size: int = 32) -> dict[str, dict]:
    """Test predictions and metrics of the baselines' rankings on the prepared test samples, by the models' code:
    {name: {"pred": ..., "metrics": ...}}."""
    prep_dir = Path(prep_dir)
    split = Split.load(prep_dir / "test.npz")
    graph = np.load(prep_dir / "graph.npz")
    if "item_counts" not in graph.files:
        raise FileNotFoundError(f"{prep_dir / 'graph.npz'} has no item_counts (an older version): retrain with --force")
    counts, lookup = graph["item_counts"], item_lookup(graph["item_ids"])
    out = {}
    for name in BASELINES:
        acc = RankingAccumulator(len(counts), auc_batch_size)
        for start in range(0, len(split), 256):
            idx = np.arange(start, min(start + 256, len(split)))
            ctx = [items_in(split.entities[i], lookup) for i in idx]
            scores = baseline_scores(name, split, idx, counts, lookup)
            acc.add(scores, split.target[idx], split.liked[idx], ctx, split.repeat[idx])
        out[name] = {"pred": predictions(acc, split), "metrics": acc.compute()}
    return out


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


PROTOCOLS = {
    "paper": "every target (the paper's and UniCRS's protocol)",
    "new": "only targets not named earlier in the dialogue (Kostric & Balog's standardized ReDial protocol)",
    "norep": "every target; the items mentioned in the context are removed from the ranking (a repeat is a miss)",
    "repeated": "only targets named earlier in the dialogue (the complement of `new`: how well a ranking repeats)",
}


def model_names(run_dir: Path) -> list[str]:
    """The models trained in a run directory, in the order of the paper's table (each variant, then its `+copy`)."""
    names = [n for v in RECOMMENDER_VARIANTS for n in (v, f"{v}+copy")]
    return [n for n in names if (run_dir / "recommender" / n / "metrics.json").exists()]


def collect(run_dir: Path) -> dict[str, dict]:
    out = {}
    for v in model_names(run_dir):
        d = run_dir / "recommender" / v
        pred = d / "test_predictions.npz"
        if not pred.exists() or "repeat" not in np.load(pred).files:
            raise FileNotFoundError(
                f"{pred} missing or from an older version: retrain with `ecr-ray train_recommender "
                f"--recommender.variant {v.removesuffix('+copy')}"
                f"{' --recommender.copy_mentioned true' if v.endswith('+copy') else ''} --force`"
            )
        out[v] = {
            "metrics": json.loads((d / "metrics.json").read_text()),
            "pred": dict(np.load(pred)),
            "history": json.loads((d / "history.json").read_text()),
            "manifest": json.loads((d / "manifest.json").read_text()),
        }
    return out


def paired_bootstrap(
    base: dict,
    other: dict,
    stats: tuple[str, ...] = ("auc_global", "rt@50"),
    mask: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Difference other − base on the same test samples (those `mask` keeps), with a 95% paired-bootstrap interval,
    for each of `stats`: `auc_global`, `r@k` / `rt@k` (Recall / Recall_True at k), either with `_norep` (the ranks
    without the context's items). ECR's per-batch AUC is added, resampled over its batches, when both predictions
    have probabilities, `auc_global` is asked for and no mask is set (it depends on the batch order). Empty when the
    samples differ."""
    if not np.array_equal(base["sample_id"], other["sample_id"]):
        return {}
    keep = np.arange(len(base["liked"])) if mask is None else np.flatnonzero(mask)
    n = len(keep)
    if n == 0:
        return {}
    liked = base["liked"][keep]
    probs = "prob" in base and "prob" in other

    def hits(pred: dict, stat: str) -> np.ndarray:
        k = int(stat.split("@")[1].split("_")[0])
        rank = pred["rank_norep" if stat.endswith("_norep") else "rank"][keep]
        return (rank < k).astype(np.float64)

    stats = tuple(st for st in stats if st != "auc_global" or probs)
    diffs = {st: hits(other, st) - hits(base, st) for st in stats if st != "auc_global"}
    sel = {st: (liked == 1).astype(np.float64) if st.startswith("rt@") else np.ones(n) for st in diffs}
    rng = np.random.default_rng(seed)

    def stat_of(st: str, idx: np.ndarray) -> float:
        if st == "auc_global":
            return global_auc(other["prob"][keep][idx], liked[idx]) - global_auc(base["prob"][keep][idx], liked[idx])
        w = sel[st][idx]
        return float((diffs[st][idx] * w).sum() / w.sum()) if w.sum() else float("nan")

    point = [stat_of(st, np.arange(n)) for st in stats]
    boots = np.array([[stat_of(st, idx) for st in stats] for idx in (rng.integers(0, n, n) for _ in range(n_boot))])
    out = {}
    for j, name in enumerate(stats):
        lo, hi = np.nanpercentile(boots[:, j], [2.5, 97.5])
        out[name] = {"diff": point[j], "ci95": [float(lo), float(hi)]}
    if probs and mask is None and "auc_global" in stats:
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
    return np.array(
        [
            ecr_auc(probs[s : s + batch_size], liked[s : s + batch_size], batch_size)
            for s in range(0, len(probs), batch_size)
        ]
    )


def protocol_view(protocol: str, pred: dict) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The recall statistics and the sample mask of a protocol."""
    if protocol in ("new", "repeated"):
        repeat = pred["repeat"].astype(bool)
        return tuple(f"r@{k}" for k in KS), ~repeat if protocol == "new" else repeat
    suffix = "_norep" if protocol == "norep" else ""
    return tuple(f"r@{k}{suffix}" for k in KS), None


def protocol_tables(runs: dict[str, dict], baselines: dict[str, dict]) -> dict:
    """Per protocol: how many samples it keeps, each ranking's R@k (baselines first), each model's paired
    differences against each baseline, and each `<variant>+copy`'s against its `<variant>` when both are trained
    (what the copy head changes)."""
    first = next(iter(baselines.values()))["pred"]
    out = {}
    for protocol in PROTOCOLS:
        stats, mask = protocol_view(protocol, first)
        rows = {}
        for name, r in [*baselines.items(), *runs.items()]:
            pred = r["pred"]
            ranks = pred["rank_norep" if protocol == "norep" else "rank"]
            if mask is not None:
                ranks = ranks[mask]
            rows[name] = {f"r@{k}": float((ranks < k).mean()) if len(ranks) else float("nan") for k in KS}
        paired = {
            name: {b: paired_bootstrap(baselines[b]["pred"], r["pred"], stats, mask) for b in baselines}
            for name, r in runs.items()
        }
        copy = {
            name: paired_bootstrap(runs[name.removesuffix("+copy")]["pred"], r["pred"], stats, mask)
            for name, r in runs.items()
            if name.endswith("+copy") and name.removesuffix("+copy") in runs
        }
        out[protocol] = {
            "about": PROTOCOLS[protocol],
            "samples": int(len(first["rank"]) if mask is None else mask.sum()),
            "rows": rows,
            "paired": paired,
            "copy": copy,
        }
    return out


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _diff(d: dict | None) -> str:
    return f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "–"


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
    shown = set()
    for v, r in runs.items():
        base = v.removesuffix("+copy")  # the paper's row of the variant, once, before its first model
        if base in PAPER and base not in shown:
            shown.add(base)
            p = PAPER[base]
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


def protocols_markdown(tables: dict) -> str:
    """One table per protocol: the baselines' and the models' R@k, each model − repeat / − popularity (paired
    bootstrap, 95%), then a line per copy head: `<variant>+copy` − `<variant>`."""
    md = []
    for protocol, t in tables.items():
        md += [
            f"### Protocol `{protocol}`: {t['about']} ({t['samples']:,} samples)",
            "",
            "| ranking | R@1 | R@10 | R@50 | " + " | ".join(f"Δ R@{k} vs {b}" for b in BASELINES for k in KS) + " |",
            "|" + "---|" * (4 + len(BASELINES) * len(KS)),
        ]
        for name, row in t["rows"].items():
            pair = t["paired"].get(name, {})
            cells = [
                _diff(pair.get(b, {}).get(st)) if name not in BASELINES else ""
                for b in BASELINES
                for st in protocol_view(protocol, {"repeat": np.zeros(1, bool)})[0]
            ]
            md.append(f"| {name} | " + " | ".join(_fmt(row[f"r@{k}"]) for k in KS) + " | " + " | ".join(cells) + " |")
        md.append("")
        stats = protocol_view(protocol, {"repeat": np.zeros(1, bool)})[0]
        for name, d in t.get("copy", {}).items():
            diffs = ", ".join(f"R@{k} {_diff(d.get(st))}" for k, st in zip(KS, stats))
            md += [f"The copy head, `{name}` − `{name.removesuffix('+copy')}`: {diffs}.", ""]
    return "\n".join(md)


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
    first = next(iter(runs))
    baselines = baseline_predictions(cfg.run_path / "recommender" / first / "prepared", cfg.recommender.auc_batch_size)
    for name, r in runs.items():
        if not np.array_equal(r["pred"]["sample_id"], baselines["repeat"]["pred"]["sample_id"]):
            raise ValueError(
                f"{cfg.run_path / 'recommender' / name}: its test samples differ from {first}'s (trained on other "
                "tables?): retrain it with --force"
            )
    report = {
        v: {
            "test": r["metrics"]["test"],
            "valid": r["metrics"]["valid"],
            "paper": PAPER.get(v),
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
    tables = protocol_tables(runs, baselines)
    report["baselines"] = {b: x["metrics"] for b, x in baselines.items()}
    report["protocols"] = tables
    (out / "recommender.json").write_text(json.dumps(report, indent=2))
    md = markdown(runs, cfg)
    diffs = [(v, r["vs_baseline"]) for v, r in report.items() if isinstance(r, dict) and r.get("vs_baseline")]
    if diffs:
        md += "\nPaired bootstrap vs baseline (same test samples, 1000 resamples, 95% interval):\n\n"
        md += "| variant | Δ AUC (ECR, batches resampled) | Δ AUC global | Δ RT@50 |\n|---|---|---|---|\n"
        for v, d in diffs:
            md += f"| {v} | " + " | ".join(_diff(d.get(k)) for k in ("auc", "auc_global", "rt@50")) + " |\n"
    md += (
        "\n## Three protocols, the same test samples\n\n"
        "popularity = items by how many train-split turns name them; repeat = the items already mentioned in the "
        "dialogue, most recent first, then popularity. Δ = model − ranking on the same samples, paired bootstrap "
        "(1000 resamples, 95% interval).\n\n" + protocols_markdown(tables)
    )
    (out / "recommender.md").write_text(md)
    files = plots(runs, out)
    return {
        "models": list(runs),
        "markdown": str(out / "recommender.md"),
        "json": str(out / "recommender.json"),
        "plots": files,
        "table": md,
    }
