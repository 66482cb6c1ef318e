import pytest

from stats import mean, median, spread


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean((10,)) == 10


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


def test_spread():
    assert spread([4, -1, 7]) == 8


def test_median_of_unsorted_values():
    assert median([3, 1, 2]) == 2


def test_median_of_an_even_count():
    assert median([1, 2, 3, 4]) == 2.5


def test_median_of_nothing():
    with pytest.raises(ValueError):
        median([])
