"""Print a seeded random sample of entity-linker output on real ReDial turns, for checking precision by hand.

    .venv/bin/python benchmarks/linker_sample.py --data-dir ../shared/data --seed 7 --n 60

Each line: the turn's free text (movie @mentions removed) and the (surface, entity) pairs linked in it.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile

from ecr_ray.config import load_config
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import build_tables, load_dataset_kg, read_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("cpu", {"data.data_dir": args.data_dir, "run_dir": tmp, "data.link_entities": False})
        build_tables(cfg)
        turns = read_table(cfg.run_path, "turns", args.split).to_pylist()
    kg = load_dataset_kg(cfg)
    linker = EntityLinker.from_kg(kg)
    rng = random.Random(args.seed)
    shown = mentions = 0
    for t in rng.sample(turns, min(len(turns), 50 * args.n)):
        text = re.sub(r"@\d+", " ", t["raw_text"])
        found = linker.link(text)
        if not found:
            continue
        shown += 1
        mentions += len(found)
        print(shown, repr(text[:160]), [(m.surface, kg.names[m.entity_id]) for m in found])
        if shown >= args.n:
            break
    print(f"{shown} turns, {mentions} linked mentions to check")


if __name__ == "__main__":
    main()
