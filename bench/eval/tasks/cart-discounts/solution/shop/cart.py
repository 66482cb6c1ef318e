"""A shopping cart: lines of (SKU, unit price in cents, quantity)."""

from shop.codes import DISCOUNTS
from shop.money import format_cents, percent_of


class Cart:
    def __init__(self):
        self._lines = {}  # sku -> [unit price in cents, quantity], in the order first added
        self._code = None  # the applied discount code, upper case

    def add(self, sku, unit_price_cents, quantity=1):
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        if unit_price_cents < 0:
            raise ValueError("a price cannot be negative")
        if sku in self._lines:
            line = self._lines[sku]
            if line[0] != unit_price_cents:
                raise ValueError(f"{sku} is already in the cart at another price")
            line[1] += quantity
        else:
            self._lines[sku] = [unit_price_cents, quantity]

    def remove(self, sku, quantity=1):
        """Take quantity of sku out; the line goes when none is left. KeyError for a SKU not in the cart."""
        line = self._lines[sku]
        line[1] -= quantity
        if line[1] <= 0:
            del self._lines[sku]

    def apply_code(self, code):
        """Apply a discount code (case-insensitive), replacing any applied before; ValueError for an unknown one."""
        key = code.upper()
        if key not in DISCOUNTS:
            raise ValueError(f"unknown discount code {code!r}")
        self._code = key

    def subtotal(self):
        return sum(price * quantity for price, quantity in self._lines.values())

    def discount(self):
        if self._code is None:
            return 0
        rule = DISCOUNTS[self._code]
        subtotal = self.subtotal()
        if subtotal < rule.get("min_subtotal", 0):
            return 0
        if rule["kind"] == "percent":
            amount = percent_of(subtotal, rule["amount"])
        else:
            amount = rule["amount"]
        return min(amount, subtotal)

    def total(self):
        return self.subtotal() - self.discount()

    def receipt(self):
        lines = [f"{quantity} x {sku} @ {format_cents(price)} = {format_cents(price * quantity)}"
                 for sku, (price, quantity) in self._lines.items()]
        lines.append(f"Subtotal: {format_cents(self.subtotal())}")
        discount = self.discount()
        if discount:
            lines.append(f"Discount ({self._code}): {format_cents(-discount)}")
        lines.append(f"Total: {format_cents(self.total())}")
        return "\n".join(lines)
