"""A shopping cart: lines of (SKU, unit price in cents, quantity)."""

from shop.money import format_cents


class Cart:
    def __init__(self):
        self._lines = {}  # sku -> [unit price in cents, quantity], in the order first added

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

    def subtotal(self):
        return sum(price * quantity for price, quantity in self._lines.values())

    def total(self):
        return self.subtotal()

    def receipt(self):
        lines = [f"{quantity} x {sku} @ {format_cents(price)} = {format_cents(price * quantity)}"
                 for sku, (price, quantity) in self._lines.items()]
        lines.append(f"Subtotal: {format_cents(self.subtotal())}")
        lines.append(f"Total: {format_cents(self.total())}")
        return "\n".join(lines)
