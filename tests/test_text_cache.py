"""TextCache: row-for-row results, one call for the new texts only, LRU eviction."""

import numpy as np
import pytest

from ecr_ray.text_cache import TextCache


class Lengths:
    """A real batch function (text → [len, n_words]) that records what it was asked."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float32).reshape(-1, 2)


def test_rows_match_the_function_and_only_new_texts_are_computed():
    fn = Lengths()
    cache = TextCache(fn, maxsize=10)
    first = cache(["a b", "ccc", "a b"])
    assert first.tolist() == fn(["a b", "ccc", "a b"]).tolist()
    assert fn.calls[0] == ["a b", "ccc"]  # duplicates computed once
    fn.calls.clear()
    again = cache(["ccc", "dd ee ff", "a b"])
    assert fn.calls == [["dd ee ff"]]  # the re-sent history is not recomputed
    assert again.tolist() == [[3, 1], [8, 3], [3, 2]]
    assert cache.stats() == {"size": 3, "hits": 2, "misses": 3}  # misses = texts computed


def test_least_recently_used_text_is_evicted_first():
    fn = Lengths()
    cache = TextCache(fn, maxsize=2)
    cache(["x"]), cache(["yy"]), cache(["x"])  # x is now the most recent
    cache(["zzz"])  # evicts yy
    fn.calls.clear()
    cache(["x", "zzz"])
    assert fn.calls == []
    cache(["yy"])
    assert fn.calls == [["yy"]] and len(cache) == 2


def test_zero_size_disables_caching_and_bad_functions_are_caught():
    fn = Lengths()
    cache = TextCache(fn, maxsize=0)
    cache(["a"]), cache(["a"])
    assert fn.calls == [["a"], ["a"]] and len(cache) == 0
    with pytest.raises(ValueError, match="maxsize"):
        TextCache(fn, maxsize=-1)
    with pytest.raises(RuntimeError, match="returned 1 rows for 2 texts"):
        TextCache(lambda ts: np.zeros((1, 2)))(["a", "b"])


def test_plain_lru_without_fn_for_rows_computed_elsewhere():
    memo = TextCache(maxsize=2)
    memo.store(["a", "b"], [[1.0], [2.0]])
    assert {k: v.tolist() for k, v in memo.lookup(["a", "c"]).items()} == {"a": [1.0]}  # "a" now most recent
    memo.store(["c"], [[3.0]])  # evicts "b", the least recently used
    assert sorted(memo.lookup(["a", "b", "c"])) == ["a", "c"]
    with pytest.raises(TypeError, match="no fn"):
        memo(["a"])
