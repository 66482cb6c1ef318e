"""The discount codes marketing hands out.

Each code has a kind and an amount:
- "percent": that percent of the subtotal comes off, rounded half up to the cent (money.percent_of);
- "fixed": that many cents come off.
A code with "min_subtotal" gives its discount only while the subtotal is at least that many cents; below it the
code stays applied but gives nothing.
"""

DISCOUNTS = {
    "WELCOME10": {"kind": "percent", "amount": 10},
    "SPRING25": {"kind": "percent", "amount": 25, "min_subtotal": 5000},
    "FIVEOFF": {"kind": "fixed", "amount": 500},
    "BIGSPENDER": {"kind": "fixed", "amount": 2000, "min_subtotal": 10000},
}
