"""Train recommender variants on real ReDial with the `cpu` recipe and print them next to the paper's Table 1 / 3.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/recommender.py --variants baseline
    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/recommender.py --variants full full+copy
    .venv/bin/python benchmarks/recommender.py --report        # table from what is trained

Every variant trains in the same run directory (default runs/bench-recommender), so the tables and the cached
context embeddings are built once. Variants other than `baseline` read the emotion classifier's entity emotions
(`recommender.emotions_source: file`, the default), so the emotion stage runs first when they are asked for (skipped
when up to date); `--recommender.emotions_source seed` uses the LLM seed labels instead. Extra
`--recommender.field value` overrides go to every variant.
Wall time = prepare + Ray Train fit + valid/test evaluation; peak memory = max RSS of the driver and the worker.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ecr_ray.config import load_config, parse_overrides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--run-dir", default="runs/bench-recommender")
    ap.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="baseline L LS LG full, each optionally with +copy (the copy head): trained in this order",
    )
    ap.add_argument("--report", action="store_true", help="only print the table of what is trained")
    ap.add_argument("--force", action="store_true", help="retrain variants that are up to date")
    args, rest = ap.parse_known_args(argv)
    overrides = {"data.data_dir": str(Path(args.data_dir).resolve()), "run_dir": args.run_dir, **parse_overrides(rest)}

    from ecr_ray.recommender.evaluate import write_report
    from ecr_ray.recommender.train import fit
    from ecr_ray.runtime import connect

    cfg = load_config("cpu", overrides)
    if not (cfg.run_path / "tables" / "manifest.json").exists():
        from ecr_ray.data.tables import build_tables

        t0 = time.perf_counter()
        build_tables(cfg)
        print(f"tables built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    with connect():
        if any(not v.startswith("baseline") for v in args.variants) and cfg.recommender.emotions_source == "file":
            from ecr_ray.emotion.train import fit as fit_emotions

            m = fit_emotions(cfg)
            print(f"emotions: {'up to date' if m.get('skipped') else 'labelled'}", file=sys.stderr)
        for v in [] if args.report else args.variants:
            copy = {"recommender.copy_mentioned": True} if v.endswith("+copy") else {}
            vcfg = load_config("cpu", {**overrides, "recommender.variant": v.removesuffix("+copy"), **copy})
            m = fit(vcfg, force=args.force)
            print(
                f"{v}: {'up to date' if m.get('skipped') else 'trained'} in {m['seconds']['total']:.0f}s, "
                f"peak RSS {m['peak_rss_mb']}, best epoch {m['best_epoch']}, test AUC {m['test']['auc']:.3f} "
                f"RT@50 {m['test']['rt@50']:.3f}",
                file=sys.stderr,
            )
    res = write_report(cfg)
    print(res["table"])
    print(f"report: {res['markdown']}, plots: {', '.join(res['plots'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
