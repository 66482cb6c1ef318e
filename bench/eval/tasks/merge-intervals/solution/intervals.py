"""Booked time ranges of a meeting room, in minutes since midnight."""


def check(interval):
    start, end = interval
    if start > end:
        raise ValueError(f"interval {interval} ends before it starts")
    return start, end


def merge(intervals):
    """The intervals (start, end) merged: a sorted list of tuples, none overlapping or touching.

    The input need not be sorted and is left as it was. Intervals that overlap or touch, such as (1, 3) and (3, 5),
    become one, (1, 5). ValueError for an interval whose end comes before its start.
    """
    merged = []
    for start, end in sorted(check(interval) for interval in intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total_booked(intervals):
    """Minutes covered by at least one interval."""
    return sum(end - start for start, end in merge(intervals))
