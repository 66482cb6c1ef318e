import pytest

from stats import median


def test_odd_count_unsorted():
    assert median([3, 1, 2]) == 2
    assert median([9, -4, 7, 0, 5]) == 5


def test_even_count_is_the_mean_of_the_middle_two():
    assert median([1, 2, 3, 4]) == 2.5
    assert median([4, 3, 2, 1]) == 2.5
    assert median([10, 1]) == 5.5
    assert median([1, 3]) == 2


def test_single_value():
    assert median([42]) == 42


def test_floats_and_negatives():
    assert median([-1.5, -0.5, 2.0]) == -0.5
    assert median([-3, -1, -2, -4]) == -2.5


def test_any_iterable():
    assert median(x for x in [5, 3, 1]) == 3
    assert median((8, 2, 6, 4)) == 5


def test_the_callers_list_is_left_alone():
    values = [3, 1, 2, 5]
    median(values)
    assert values == [3, 1, 2, 5]


def test_empty_raises_value_error():
    with pytest.raises(ValueError):
        median([])
