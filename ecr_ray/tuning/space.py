"""Search spaces, result tables, plots and best-config recipes for the paper's Appendix B sweeps.

Two sweeps (`jobs/tune.py` runs them on Ray Tune):
- `feedback` (B.1): the loss weights of liked / disliked / not-said targets. The paper varies one weight while the
  other two stay at 1.0 (7 settings) and trains each to the end; a full grid is an option. Each setting is reported
  by the model its training keeps (best epoch by validation loss): validation and test metrics side by side, the
  best setting chosen on validation only.
- `knowledge` (B.2): (pn_t KG triples, pn_e review entities) in the generation prompt: (0,0), (2,4), (4,8), and
  (2,4) in the `entities` format (no triple lines, the triples' tails among the entities: pn_t + pn_e entities).
Nothing here imports Ray.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import yaml

from ..config import KNOWLEDGE_FORMATS

FEEDBACK_DEFAULT = {"like": [1.0, 1.5, 2.0], "dislike": [0.0, 0.5, 1.0], "not_said": [0.0, 0.5, 1.0]}
FEEDBACK_KEYS = tuple(FEEDBACK_DEFAULT)
KNOWLEDGE_DEFAULT = [[0, 0], [2, 4], [4, 8], [2, 4, "entities"]]
KNOWLEDGE_KEYS = ("num_triples", "num_review_entities", "knowledge_format")

# Recommender metrics a feedback trial reports for its kept model, on each split ("valid_rt@50", "test_rt@50", ...).
RECOMMENDER_METRICS = ("rt@10", "rt@50", "r@10", "r@50", "auc", "auc_global")

# What each sweep optimises (on the validation split) and reports beside it.
OBJECTIVES = {
    "feedback": {
        "metric": "valid_rt@50",
        "mode": "max",
        "report": [f"{split}_{m}" for m in RECOMMENDER_METRICS for split in ("valid", "test")],
    },
    # Informativeness without an LLM judge: the item's own KG entities named per response; hallucinations beside it.
    "knowledge": {
        "metric": "item_entities_per_response",
        "mode": "max",
        "report": [
            "item_entities_per_response",
            "halluc_entities_per_response",
            "responses_with_halluc",
            "distinct_1",
            "distinct_2",
            "words_mean",
            "emotion_intensity",
        ],
    },
}


def feedback_space(space: dict[str, list[float]] | None = None, full_grid: bool = False) -> list[dict[str, float]]:
    """Weight settings to try. One-at-a-time (paper): vary one weight, the others at 1.0; duplicates removed."""
    space = {**FEEDBACK_DEFAULT, **(space or {})}
    unknown = set(space) - set(FEEDBACK_DEFAULT)
    if unknown:
        raise ValueError(
            f"tune.search_space.feedback: unknown weight(s) {sorted(unknown)}; known: {', '.join(FEEDBACK_KEYS)}"
        )
    for k, values in space.items():
        if not values or any(float(v) < 0 for v in values):
            raise ValueError(f"tune.search_space.feedback.{k}: needs non-negative values, got {values!r}")
    if full_grid:
        combos = [dict(zip(space, vals)) for vals in itertools.product(*space.values())]
    else:
        combos = []
        for k, values in space.items():
            for v in values:
                combos.append({**dict.fromkeys(space, 1.0), k: float(v)})
    seen, out = set(), []
    for c in combos:
        key = tuple(sorted((k, float(v)) for k, v in c.items()))
        if key not in seen:
            seen.add(key)
            out.append({k: float(v) for k, v in c.items()})
    return out


def knowledge_space(space: list | None = None) -> list[dict[str, Any]]:
    """Prompt settings to try: entries `[pn_t, pn_e]` (triples format) or `[pn_t, pn_e, "entities"]`."""
    pairs = space if space is not None else KNOWLEDGE_DEFAULT
    out = []
    for p in pairs:
        ok = (
            isinstance(p, (list, tuple))
            and len(p) in (2, 3)
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in p[:2])
            and (len(p) == 2 or p[2] in KNOWLEDGE_FORMATS)
        )
        if not ok:
            raise ValueError(
                f"tune.search_space.knowledge: each entry is [pn_t, pn_e] or [pn_t, pn_e, triples|entities] with "
                f"non-negative ints, got {p!r}"
            )
        out.append(
            {"num_triples": p[0], "num_review_entities": p[1], "knowledge_format": p[2] if len(p) == 3 else "triples"}
        )
    return out


def knowledge_label(row: dict[str, Any]) -> str:
    """`(2,4)` for the triples format, `(0,2+4)` for the same knowledge as entities (the paper's Table 9 labels)."""
    t, e = int(row["num_triples"]), int(row["num_review_entities"])
    return f"(0,{t}+{e})" if row.get("knowledge_format") == "entities" else f"({t},{e})"


def write_results(rows: list[dict[str, Any]], exp_dir: Path, sweep: str) -> tuple[Path, Path]:
    """rows: one per trial, the swept parameters first then the metrics. Writes results.csv + results.md."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    csv_path, md_path = exp_dir / "results.csv", exp_dir / "results.md"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    obj = OBJECTIVES[sweep]
    header = f"# {sweep} sweep: the best setting is chosen on {obj['metric']} ({obj['mode']}), validation split only"
    if any(c.startswith("test_") for c in cols):
        header += "; the test columns are reported beside it, never used to choose"
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def paired_markdown(diffs: list[dict[str, Any]]) -> str:
    """The feedback sweep's paired comparison (`sweep.paired_vs_uniform`) as a Markdown section ("" when empty)."""
    if not diffs:
        return ""
    lines = [
        "",
        "Each setting − uniform weights (1.0, 1.0, 1.0), kept models on the same test samples (paired bootstrap, "
        "1000 resamples, 95% interval):",
        "",
        "| " + " | ".join(FEEDBACK_KEYS) + " | Δ test RT@50 | Δ test AUC global | Δ test AUC (ECR, per batch) |",
        "|" + "---|" * (len(FEEDBACK_KEYS) + 3),
    ]
    for d in diffs:
        cells = [
            f"{d[k]['diff']:+.4f} [{d[k]['ci95'][0]:+.4f}, {d[k]['ci95'][1]:+.4f}]" if k in d else "–"
            for k in ("rt@50", "auc_global", "auc")
        ]
        lines.append("| " + " | ".join([*(_fmt(d[k]) for k in FEEDBACK_KEYS), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def best_row(rows: list[dict[str, Any]], sweep: str) -> dict[str, Any]:
    obj = OBJECTIVES[sweep]
    scored = [r for r in rows if isinstance(r.get(obj["metric"]), (int, float))]
    if not scored:
        raise ValueError(f"no trial reported {obj['metric']}")
    return (max if obj["mode"] == "max" else min)(scored, key=lambda r: r[obj["metric"]])


def write_best_recipe(best: dict[str, Any], base_recipe: str, exp_dir: Path, sweep: str) -> Path:
    """The best configuration as a recipe that extends the base one: `ecr-ray ... --recipe <this file>`."""
    if sweep == "feedback":
        body = {"recommender": {"feedback_weights": {k: float(best[k]) for k in FEEDBACK_KEYS}}}
    else:
        body = {
            "generator": {
                "num_triples": int(best["num_triples"]),
                "num_review_entities": int(best["num_review_entities"]),
                "knowledge_format": best.get("knowledge_format", "triples"),
            }
        }
    obj = OBJECTIVES[sweep]
    text = (
        f"# Best {sweep} setting found by `ecr-ray tune --sweep {sweep}` "
        f"({obj['metric']} = {best[obj['metric']]:.4f} on the validation split).\n"
    )
    path = exp_dir / f"best_{sweep}.yaml"
    path.write_text(text + yaml.safe_dump({"extends": base_recipe, **body}, sort_keys=False))
    return path


def plot(rows: list[dict[str, Any]], exp_dir: Path, sweep: str) -> Path:
    """Feedback: Figure 3's panels (RT@10, RT@50 against the weight of each feedback type, the others at 1.0), test
    solid and validation dashed. Knowledge: one bar panel per reported metric over the settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obj = OBJECTIVES[sweep]
    if sweep == "feedback":
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, m in zip(axes, ("rt@10", "rt@50")):
            for k, color in zip(FEEDBACK_KEYS, ("#d62728", "#1f77b4", "#2ca02c")):
                sub = sorted((r for r in rows if all(r[o] == 1.0 for o in FEEDBACK_KEYS if o != k)), key=lambda r: r[k])
                for split, style in (("test", "-"), ("valid", "--")):
                    ys = [r.get(f"{split}_{m}") for r in sub]
                    if any(isinstance(y, (int, float)) for y in ys):
                        ax.plot([r[k] for r in sub], ys, style, marker="o", color=color, label=f"{k} ({split})")
            ax.set_title(m.upper(), fontsize=10)
            ax.set_xlabel("weight scalar (the other two at 1.0)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        title = f"{sweep} sweep: kept model of each trial (test solid, validation dashed)"
    else:
        metrics = [m for m in obj["report"] if any(isinstance(r.get(m), (int, float)) for r in rows)]
        labels = [knowledge_label(r) for r in rows]
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4))
        for ax, m in zip(list(axes) if len(metrics) > 1 else [axes], metrics):
            ax.bar(labels, [r.get(m) or 0 for r in rows], color="#4a7fb5")
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("(pn_t, pn_e)")
            ax.tick_params(axis="x", labelsize=7)
        title = f"{sweep} sweep (validation split)"
    fig.suptitle(title)
    fig.tight_layout()
    path = exp_dir / f"{sweep}_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
