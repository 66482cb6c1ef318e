"""Money is always an int number of cents."""


def format_cents(cents):
    """12345 -> "$123.45"; negative amounts get a leading minus: -5 -> "-$0.05"."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100}.{cents % 100:02d}"


def percent_of(cents, percent):
    """percent % of cents, rounded half up to a whole cent (1005 cents at 10% is 101)."""
    return (cents * percent + 50) // 100
