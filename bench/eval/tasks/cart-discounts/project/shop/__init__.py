"""A tiny shop: carts, money helpers and the discount codes marketing hands out."""
