"""Per-text memo for batch text models (emotion probabilities, turn embeddings).

A stateless chat client re-sends the whole dialogue with every request; with this cache only the turns a replica
has not seen yet go through the encoder. Least recently used texts are evicted first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class TextCache:
    """`TextCache(fn, maxsize)(texts)` = `fn(texts)` row for row, computing only texts not cached, in one call.
    Without `fn` it is a plain LRU of rows computed elsewhere (`lookup` / `store`)."""

    def __init__(self, fn: Callable[[list[str]], np.ndarray] | None = None, maxsize: int = 10_000):
        if maxsize < 0:
            raise ValueError(f"maxsize: must be >= 0, got {maxsize}")
        self.fn, self.maxsize = fn, maxsize
        self.hits = self.misses = 0
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # Serve runs requests in worker threads

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The cached rows among `texts` (marked recently used)."""
        with self._lock:
            found = {t: self._rows[t] for t in texts if t in self._rows}
            for t in found:
                self._rows.move_to_end(t)
        return found

    def store(self, texts: list[str], rows) -> None:
        with self._lock:
            for t, r in zip(texts, rows):
                self._rows[t] = np.asarray(r)
                self._rows.move_to_end(t)
            while len(self._rows) > self.maxsize:
                self._rows.popitem(last=False)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.fn is None:
            raise TypeError("this TextCache has no fn: use lookup/store")
        found = self.lookup(texts)
        new = list(dict.fromkeys(t for t in texts if t not in found))
        if new:
            rows = np.asarray(self.fn(new))
            if len(rows) != len(new):
                raise RuntimeError(f"{self.fn!r} returned {len(rows)} rows for {len(new)} texts")
            found.update(zip(new, rows))
            self.store(new, rows)
        fresh = set(new)
        with self._lock:
            self.hits += sum(t not in fresh for t in texts)
            self.misses += len(new)
        if not texts:
            return np.asarray(self.fn([]))
        return np.stack([found[t] for t in texts])

    def stats(self) -> dict:
        return {"size": len(self._rows), "hits": self.hits, "misses": self.misses}
