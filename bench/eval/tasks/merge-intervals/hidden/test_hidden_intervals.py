import random

import pytest

from intervals import merge, total_booked


def test_unsorted_input():
    assert merge([(5, 6), (1, 2), (3, 4)]) == [(1, 2), (3, 4), (5, 6)]
    assert merge([(4, 8), (1, 5)]) == [(1, 8)]


def test_touching_intervals_merge():
    assert merge([(1, 3), (3, 5)]) == [(1, 5)]
    assert merge([(3, 5), (1, 3)]) == [(1, 5)]


def test_a_contained_interval_does_not_shrink_the_merge():
    assert merge([(1, 10), (2, 3)]) == [(1, 10)]
    assert merge([(1, 10), (2, 3), (4, 12)]) == [(1, 12)]


def test_chains_collapse():
    assert merge([(1, 2), (2, 3), (3, 4), (10, 11)]) == [(1, 4), (10, 11)]


def test_empty_and_single():
    assert merge([]) == []
    assert merge([(2, 2)]) == [(2, 2)]
    assert merge([(1, 5)]) == [(1, 5)]


def test_returns_tuples_and_leaves_the_input_alone():
    given = [(4, 8), (1, 5)]
    result = merge(given)
    assert given == [(4, 8), (1, 5)]
    assert all(type(item) is tuple for item in result)
    assert merge([[3, 4], [1, 2]]) == [(1, 2), (3, 4)]


def test_any_iterable():
    assert merge(iter([(3, 4), (1, 3)])) == [(1, 4)]


def test_backwards_interval_anywhere():
    with pytest.raises(ValueError):
        merge([(1, 2), (9, 3)])


def test_total_booked_counts_overlaps_once():
    assert total_booked([(0, 60), (30, 90), (10, 20)]) == 90


@pytest.mark.parametrize("seed", range(5))
def test_random_intervals_match_a_reference(seed):
    rng = random.Random(seed)
    intervals = []
    for _ in range(rng.randint(1, 30)):
        start = rng.randint(0, 100)
        intervals.append((start, start + rng.randint(0, 10)))
    covered = set()
    points = set()
    for start, end in intervals:
        covered.update(x + 0.5 for x in range(start, end))
        points.add(start)
    result = merge(intervals)
    assert result == sorted(result)
    for (_, end), (start, _) in zip(result, result[1:]):
        assert end < start
    assert {x + 0.5 for start, end in result for x in range(start, end)} == covered
    for point in points:
        assert any(start <= point <= end for start, end in result)
