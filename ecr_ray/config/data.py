"""The `data` section: where the raw data is and how it becomes tables (the `data` stage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import (
    SAMPLE_DATA_DIR,
    STRICT,
    _check,
)


@dataclass
class DataConfig:
    """Where the raw data is and how it becomes tables."""

    __pydantic_config__ = STRICT

    data_dir: str = "sample"
    """Raw data directory (layout of `../shared/data`). `sample` = the dataset shipped inside the package."""
    dataset: str = "redial"
    """`redial` or `inspired`."""
    valid_fraction: float = 0.1
    """Share of train conversations carved (deterministically, by id hash) into the validation split."""
    max_conversations: int = 0
    """Use at most this many conversations per split (0 = all); for quick runs."""
    link_entities: bool = True
    """Link free-text mentions (actors, genres, ...) to KG entities with the offline linker."""
    skip_invalid: bool = False
    """Skip malformed rows (and report them) instead of failing on the first one."""

    def __post_init__(self) -> None:
        _check(self.dataset in ("redial", "inspired"), f"data.dataset: expected redial|inspired, got {self.dataset!r}")
        _check(0.0 <= self.valid_fraction < 1.0, f"data.valid_fraction: must be in [0, 1), got {self.valid_fraction}")
        _check(self.max_conversations >= 0, "data.max_conversations: must be >= 0")

    def resolved_dir(self) -> Path:
        return SAMPLE_DATA_DIR if self.data_dir == "sample" else Path(self.data_dir).expanduser().resolve()
