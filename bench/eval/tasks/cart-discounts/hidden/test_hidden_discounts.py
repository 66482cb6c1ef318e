import pytest

from shop.cart import Cart


def cart_of(*prices):
    cart = Cart()
    for number, price in enumerate(prices):
        cart.add(f"item{number}", price)
    return cart


def test_percent_code():
    cart = cart_of(2000)
    cart.apply_code("WELCOME10")
    assert cart.discount() == 200
    assert cart.total() == 1800


def test_codes_are_case_insensitive():
    cart = cart_of(2000)
    cart.apply_code("welcome10")
    assert cart.discount() == 200


def test_percent_rounds_half_up_to_the_cent():
    cart = cart_of(1005)
    cart.apply_code("WELCOME10")
    assert cart.discount() == 101
    assert cart.total() == 904


def test_fixed_code():
    cart = cart_of(1200)
    cart.apply_code("FIVEOFF")
    assert cart.discount() == 500
    assert cart.total() == 700


def test_never_more_than_the_subtotal():
    cart = cart_of(300)
    cart.apply_code("FIVEOFF")
    assert cart.discount() == 300
    assert cart.total() == 0


def test_no_code_no_discount():
    cart = cart_of(300)
    assert cart.discount() == 0
    assert cart.total() == 300


def test_unknown_code_raises_and_changes_nothing():
    cart = cart_of(2000)
    cart.apply_code("FIVEOFF")
    with pytest.raises(ValueError):
        cart.apply_code("FREESTUFF")
    assert cart.discount() == 500


def test_a_second_code_replaces_the_first():
    cart = cart_of(2000)
    cart.apply_code("FIVEOFF")
    cart.apply_code("WELCOME10")
    assert cart.discount() == 200


def test_minimum_subtotal():
    cart = cart_of(4999)
    cart.apply_code("SPRING25")
    assert cart.discount() == 0
    assert cart.total() == 4999
    cart.add("extra", 1)
    assert cart.discount() == 1250
    assert cart.total() == 3750


def test_fixed_code_with_a_minimum():
    cart = cart_of(9999)
    cart.apply_code("BIGSPENDER")
    assert cart.total() == 9999
    cart.add("more", 1)
    assert cart.total() == 8000


def test_discount_follows_the_cart():
    cart = Cart()
    cart.add("apple", 1000, 2)
    cart.apply_code("WELCOME10")
    assert cart.discount() == 200
    cart.remove("apple")
    assert cart.discount() == 100
    assert cart.total() == 900


def test_receipt_shows_the_discount():
    cart = Cart()
    cart.add("apple", 50, 2)
    cart.apply_code("fiveoff")
    assert cart.receipt() == ("2 x apple @ $0.50 = $1.00\nSubtotal: $1.00\nDiscount (FIVEOFF): -$1.00\n"
                              "Total: $0.00")


def test_receipt_without_a_discount_is_unchanged():
    cart = Cart()
    cart.add("apple", 50, 2)
    assert cart.receipt() == "2 x apple @ $0.50 = $1.00\nSubtotal: $1.00\nTotal: $1.00"
    cart.apply_code("SPRING25")  # below its minimum: no discount line
    assert cart.receipt() == "2 x apple @ $0.50 = $1.00\nSubtotal: $1.00\nTotal: $1.00"
