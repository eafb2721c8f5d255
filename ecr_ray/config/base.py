"""What every config section shares: where the package and its data are, the validation helpers and errors,
`Resources`, and the names (emotion labels, knowledge formats) several sections check against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = PACKAGE_DIR.parent  # the checkout (tests, benchmarks); not needed once installed
RECIPES_DIR = PACKAGE_DIR / "recipes"
SAMPLE_DATA_DIR = PACKAGE_DIR / "data" / "sample"
# Every section rejects unknown fields; numbers given where a string is expected (a path "2024") are kept as text.
STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

KNOWLEDGE_FORMATS = ("triples", "entities")
"""Formats of the generation prompt's knowledge (generator.knowledge_format, Appendix B.2)."""
EMOTIONS = ("like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise")


class ConfigError(ValueError):
    """A recipe or command-line value is wrong; the message names the field."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_device(section: str, device: str, dtype: str) -> None:
    _check(device in ("auto", "cpu", "cuda"), f"{section}.device: expected auto|cpu|cuda, got {device!r}")
    _check(dtype in ("auto", "float32", "bfloat16"), f"{section}.dtype: expected auto|float32|bfloat16, got {dtype!r}")


@dataclass
class Resources:
    """What one piece of a stage's Ray work reserves, and how many run side by side: Ray Train workers, Ray Data
    actors or Ray tasks. Ray schedules a piece only where a node has `cpus` CPUs and `gpus` GPUs free, so size these
    to your node types (cluster/*.yaml): a request no node type can meet waits forever."""

    __pydantic_config__ = STRICT
    workers: int = 1
    """Train workers / actors / parallel tasks."""
    cpus: float = 1.0
    """CPUs each one reserves (also its torch thread count, rounded up: 1.5 leaves half a core to something small,
    such as a Tune trial's driver, and still runs 2 threads)."""
    gpus: float = 0.0
    """GPUs each one reserves; > 0 makes the work run on CUDA (`device: auto`)."""

    def __post_init__(self) -> None:
        _check(self.workers >= 1, f"workers: must be >= 1, got {self.workers}")
        _check(
            self.cpus >= 0 and self.gpus >= 0 and self.cpus + self.gpus > 0,
            f"cpus/gpus: must be >= 0 and not both 0, got cpus={self.cpus} gpus={self.gpus}",
        )

    def scaling_config(self):
        """Ray Train's ScalingConfig for these resources."""
        from ray.train import ScalingConfig

        per_worker = {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}
        return ScalingConfig(num_workers=self.workers, use_gpu=self.gpus > 0, resources_per_worker=per_worker)

    def options(self) -> dict[str, float]:
        """`ray.remote(...).options(**r.options())` for a task or an actor of these resources."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    @property
    def threads(self) -> int:
        return max(1, math.ceil(self.cpus))
