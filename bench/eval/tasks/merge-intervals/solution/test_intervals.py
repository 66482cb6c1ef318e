import pytest

from intervals import merge, total_booked


def test_separate_intervals_stay_apart():
    assert merge([(1, 2), (5, 6)]) == [(1, 2), (5, 6)]


def test_overlapping_intervals_merge():
    assert merge([(1, 4), (2, 6)]) == [(1, 6)]


def test_total_booked():
    assert total_booked([(60, 90), (120, 150)]) == 60


def test_backwards_interval():
    with pytest.raises(ValueError):
        merge([(5, 1)])


def test_unsorted_touching_and_contained():
    assert merge([(3, 5), (1, 3)]) == [(1, 5)]
    assert merge([(1, 10), (2, 3)]) == [(1, 10)]
    assert merge([(6, 7), (1, 2)]) == [(1, 2), (6, 7)]
