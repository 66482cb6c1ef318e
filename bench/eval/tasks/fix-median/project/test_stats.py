import pytest

from stats import mean, spread


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean((10,)) == 10


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


def test_spread():
    assert spread([4, -1, 7]) == 8
