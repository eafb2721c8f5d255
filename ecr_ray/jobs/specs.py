"""Write what a cluster user submits and deploys, for every shipped recipe (or one): jobs/<recipe>/<job>.yaml (each
job's `ray job submit` specification) and serve/<recipe>.yaml (what `ecr-ray serve --write-config` writes).

    ecr-ray specs                    # into the checkout's top-level jobs/ and serve/
    ecr-ray specs --check            # exit 2 naming every file that is missing or differs (nothing written)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ecr_ray.config import PROJECT_ROOT, RECIPES_DIR, ConfigError, load_config
from ecr_ray.serve.deploy import write_config
from ecr_ray.submission import write_job_specs

from .cli import run_job


def recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def write_all(root: Path, names: list[str]) -> list[Path]:
    """Every recipe's files under `root` (jobs/<recipe>/, serve/<recipe>.yaml), paths relative to `root`."""
    out = []
    for recipe in names:
        cfg = load_config(recipe)
        out += [p.relative_to(root) for p in write_job_specs(cfg, recipe, root)]
        path = root / "serve" / f"{recipe}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_config(cfg, recipe, path, shown=f"serve/{recipe}.yaml")
        out.append(path.relative_to(root))
    return out


def stale(root: Path, names: list[str]) -> list[str]:
    """The files under `root` that differ from what `write_all` writes, or are missing or left over."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = write_all(Path(tmp), names)
        new = {p: (Path(tmp) / p).read_text() for p in fresh}
    wrong = [str(p) for p, text in new.items() if not (root / p).exists() or (root / p).read_text() != text]
    extra = {p.relative_to(root) for r in names for p in (root / "jobs" / r).glob("*.yaml")} - set(fresh)
    return wrong + sorted(f"{p} (no such job)" for p in map(str, extra))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=recipes(), help="only this recipe (default: every shipped recipe)")
    p.add_argument("--out", default=str(PROJECT_ROOT), help="folder holding jobs/ and serve/ (default: the checkout)")
    p.add_argument("--check", action="store_true", help="write nothing; fail naming the files that are stale")
    args = p.parse_args(argv)
    root, names = Path(args.out), [args.recipe] if args.recipe else recipes()
    if args.check:
        if wrong := stale(root, names):
            raise ConfigError(f"stale under {root} (run `ecr-ray specs`): {', '.join(wrong)}")
        print(f"jobs/ and serve/ under {root} are up to date ({len(names)} recipes)", file=sys.stderr)
        return 0
    for path in write_all(root, names):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
