import pytest

from shop.cart import Cart


def test_subtotal_and_total():
    cart = Cart()
    cart.add("apple", 50, 3)
    cart.add("pear", 120)
    assert cart.subtotal() == 270
    assert cart.total() == 270


def test_adding_again_adds_up():
    cart = Cart()
    cart.add("apple", 50)
    cart.add("apple", 50, 2)
    assert cart.subtotal() == 150


def test_remove():
    cart = Cart()
    cart.add("apple", 50, 2)
    cart.remove("apple")
    assert cart.subtotal() == 50
    cart.remove("apple")
    assert cart.subtotal() == 0
    with pytest.raises(KeyError):
        cart.remove("apple")


def test_receipt():
    cart = Cart()
    cart.add("apple", 50, 2)
    assert cart.receipt() == "2 x apple @ $0.50 = $1.00\nSubtotal: $1.00\nTotal: $1.00"


def test_percent_code_rounds_half_up():
    cart = Cart()
    cart.add("apple", 1005)
    cart.apply_code("welcome10")
    assert cart.discount() == 101
    assert cart.total() == 904


def test_unknown_code():
    with pytest.raises(ValueError):
        Cart().apply_code("NOPE")


def test_discount_never_exceeds_the_subtotal():
    cart = Cart()
    cart.add("apple", 300)
    cart.apply_code("FIVEOFF")
    assert cart.total() == 0
    assert "Discount (FIVEOFF): -$3.00" in cart.receipt()
