"""Where the raw files of a dataset are inside the data directory (what the `tables` stage reads and hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DataError


@dataclass
class Sources:
    """Where the raw files of one dataset are inside the data directory."""

    splits: dict[str, Path]
    kg_dir: Path
    redial_dir: Path | None

    @classmethod
    def of(cls, data_dir: Path, dataset: str) -> Sources:
        if dataset == "redial":
            d = data_dir / "redial"
            return cls({"train": d / "train_data.jsonl", "test": d / "test_data.jsonl"}, d / "kg", d)
        d = data_dir / "inspired"
        # INSPIRED's test split is not public in UniCRS format here: its valid file serves as test, and the
        # validation split is carved from train like ReDial's (never tune on test).
        return cls({"train": d / "train_data_dbpedia.jsonl", "test": d / "valid_data_dbpedia.jsonl"}, d, None)

    def files(self) -> list[Path]:
        return [*self.splits.values(), *sorted(p for p in self.kg_dir.glob("*.json"))]

    def check(self) -> None:
        for p in self.files() + [self.kg_dir / "entity2id.json"]:
            if not p.exists():
                raise DataError(p, None, "<file>", "file not found (run `ecr-ray data download` or set --data-dir)")
