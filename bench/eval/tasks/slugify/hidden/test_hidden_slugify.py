import pytest

from textutils import slugify


@pytest.mark.parametrize("title, slug", [
    ("Hello, World!", "hello-world"),
    ("Crème Brûlée", "creme-brulee"),
    ("Ångström units", "angstrom-units"),
    ("  --Already--slugged--  ", "already-slugged"),
    ("Python 3.11 release notes", "python-3-11-release-notes"),
    ("snake_case_name", "snake-case-name"),
    ("Top 10 Tips", "top-10-tips"),
    ("a", "a"),
])
def test_slugs(title, slug):
    assert slugify(title) == slug


@pytest.mark.parametrize("title", ["", "!!!", "  ", "—"])
def test_nothing_left_is_an_empty_slug(title):
    assert slugify(title) == ""


@pytest.mark.parametrize("limit, slug", [
    (100, "naive-cafe-deja-vu"),
    (18, "naive-cafe-deja-vu"),
    (17, "naive-cafe-deja"),
    (11, "naive-cafe"),
    (10, "naive-cafe"),
    (9, "naive"),
    (5, "naive"),
    (3, "nai"),
])
def test_max_length_cuts_between_words(limit, slug):
    assert slugify("naïve café déjà vu", max_length=limit) == slug


def test_max_length_never_leaves_a_hyphen_at_the_end():
    for limit in range(1, 30):
        slug = slugify("One two three four five", max_length=limit)
        assert len(slug) <= limit
        assert not slug.endswith("-") and not slug.startswith("-")


def test_no_max_length_by_default():
    title = "word " * 50
    assert slugify(title) == "-".join(["word"] * 50)
