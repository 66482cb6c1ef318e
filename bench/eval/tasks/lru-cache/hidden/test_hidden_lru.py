import random
from collections import OrderedDict

import pytest

from lru import LRUCache


def test_get_refreshes_an_entry():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "a" in cache and "b" not in cache and "c" in cache


def test_updating_a_cached_key_evicts_nothing():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    assert len(cache) == 2
    assert cache.get("a") == 10 and cache.get("b") == 2


def test_updating_refreshes_the_key():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.keys() == ["a", "c"]


def test_keys_in_use_order():
    cache = LRUCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    cache.get("a")
    assert cache.keys() == ["b", "c", "a"]


def test_contains_len_and_keys_do_not_count_as_use():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert "a" in cache
    assert len(cache) == 2
    cache.keys()
    cache.put("c", 3)
    assert "a" not in cache


def test_a_missing_key_changes_nothing():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("zzz") is None
    assert cache.keys() == ["a", "b"]


def test_capacity_one():
    cache = LRUCache(1)
    cache.put("a", 1)
    cache.put("a", 2)
    assert cache.get("a") == 2
    cache.put("b", 3)
    assert cache.keys() == ["b"]


def test_stored_none_and_falsy_values():
    cache = LRUCache(2)
    cache.put("a", None)
    cache.put("b", 0)
    assert "a" in cache and cache.get("a", "missing") is None
    assert cache.get("b", "missing") == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_use_matches_a_reference(seed):
    rng = random.Random(seed)
    capacity = rng.randint(1, 6)
    cache, reference = LRUCache(capacity), OrderedDict()
    for _ in range(400):
        key = rng.randint(0, 9)
        if rng.random() < 0.5:
            value = rng.random()
            cache.put(key, value)
            reference[key] = value
            reference.move_to_end(key)
            if len(reference) > capacity:
                reference.popitem(last=False)
        else:
            expected = reference.get(key)
            if key in reference:
                reference.move_to_end(key)
            assert cache.get(key) == expected
        assert cache.keys() == list(reference)
        assert len(cache) == len(reference) <= capacity
