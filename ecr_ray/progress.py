"""Progress of long loops that run in a job's own process: a bar when stderr is a terminal, otherwise a log line
every tenth of the way (job logs, `ray job logs`, CI), each with the rate so far. Training progress comes from the
Train skeleton (`ecr_ray.train`) instead: a line per epoch and every `log_every` steps."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

log = logging.getLogger("ecr_ray.progress")


class _Lines:
    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.t0, self.next = 0, time.perf_counter(), max(1, total // 10)

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.n >= self.next or self.n == self.total:
            rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
            log.info("%s: %d/%d %ss (%.1f %ss/s)", self.desc, self.n, self.total, self.unit, rate, self.unit)
            self.next = self.n + max(1, self.total // 10)


class _Silent:
    def update(self, k: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress(total: int, desc: str, unit: str = "item", quiet_below: int = 0) -> Iterator:
    """`with progress(n, "labels", "turn") as bar: bar.update(k)`. Below `quiet_below` items (e.g. a served request's
    few turns) it reports nothing."""
    if total < quiet_below:
        yield _Silent()
    elif sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr) as bar:
            yield bar
    else:
        yield _Lines(total, desc, unit)
