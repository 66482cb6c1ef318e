"""Small statistics helpers for the weekly sales report."""


def mean(values):
    """The arithmetic mean of a non-empty sequence of numbers."""
    values = list(values)
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)


def median(values):
    """The middle value of a non-empty sequence of numbers.

    The values need not be sorted, and the caller's sequence is left as it was. For an even number of
    values the median is the mean of the two middle ones.
    """
    values = sorted(values)
    if not values:
        raise ValueError("median() of an empty sequence")
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def spread(values):
    """The largest value minus the smallest one, for a non-empty sequence of numbers."""
    values = list(values)
    if not values:
        raise ValueError("spread() of an empty sequence")
    return max(values) - min(values)
