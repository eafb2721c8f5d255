"""Search spaces, result tables, plots and best-config recipes for the paper's Appendix B sweeps.

Two sweeps (`jobs/tune.py` runs them on Ray Tune):
- `feedback` (B.1): the loss weights of liked / disliked / not-said targets. The paper varies one weight while the
  other two stay at 1.0; a full grid is an option.
- `knowledge` (B.2): (pn_t KG triples, pn_e review entities) in the generation prompt, plus the entity-only format.
Nothing here imports Ray.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import yaml

FEEDBACK_DEFAULT = {"like": [1.0, 1.5, 2.0], "dislike": [0.0, 0.5, 1.0], "not_said": [0.0, 0.5, 1.0]}
KNOWLEDGE_DEFAULT = [[0, 0], [2, 4], [4, 8], [0, 6]]

# What each sweep optimises (on the validation split) and reports beside it.
OBJECTIVES = {
    "feedback": {
        "metric": "valid_rt@50",
        "mode": "max",
        "report": ["valid_rt@10", "valid_rt@50", "valid_auc", "valid_auc_global", "valid_r@10", "valid_r@50"],
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
            f"tune.search_space.feedback: unknown weight(s) {sorted(unknown)}; known: like, dislike, not_said"
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


def knowledge_space(space: list | None = None) -> list[dict[str, int]]:
    pairs = space if space is not None else KNOWLEDGE_DEFAULT
    out = []
    for p in pairs:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, int) and x >= 0 for x in p)):
            raise ValueError(f"tune.search_space.knowledge: each entry is [pn_t, pn_e] of non-negative ints, got {p!r}")
        out.append({"num_triples": p[0], "num_review_entities": p[1]})
    return out


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
    lines = [
        f"# {sweep} sweep — objective {obj['metric']} ({obj['mode']}) on the validation split",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


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
        body = {"recommender": {"feedback_weights": {k: float(best[k]) for k in ("like", "dislike", "not_said")}}}
    else:
        body = {
            "generator": {
                "num_triples": int(best["num_triples"]),
                "num_review_entities": int(best["num_review_entities"]),
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
    """Figure-3-style panels: one per swept parameter, the reported metrics against its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obj = OBJECTIVES[sweep]
    metrics = [m for m in obj["report"] if any(isinstance(r.get(m), (int, float)) for r in rows)]
    if sweep == "feedback":
        panels = [
            (k, [r for r in rows if all(r[o] == 1.0 for o in ("like", "dislike", "not_said") if o != k)])
            for k in ("like", "dislike", "not_said")
        ]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for ax, (k, sub) in zip(axes, panels):
            sub = sorted(sub, key=lambda r: r[k])
            for m in metrics:
                ax.plot([r[k] for r in sub], [r.get(m) for r in sub], marker="o", label=m)
            ax.set_xlabel(f"weight of '{k}' (others 1.0)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
    else:
        labels = [f"({r['num_triples']},{r['num_review_entities']})" for r in rows]
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4))
        for ax, m in zip(list(axes) if len(metrics) > 1 else [axes], metrics):
            ax.bar(labels, [r.get(m) or 0 for r in rows], color="#4a7fb5")
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("(pn_t, pn_e)")
            ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{sweep} sweep (validation split)")
    fig.tight_layout()
    path = exp_dir / f"{sweep}_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
