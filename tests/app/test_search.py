"""The search box's query language: a bare word is an exact label (then id) match, col=value
exact, col~text contains. Expected masks are written here with plain Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.app.search import search
from explorer.data.base import Dataset
from explorer.core.errors import InputError


@pytest.fixture
def ds():
    rng = np.random.default_rng(0)
    n = 500
    labels = rng.integers(0, 10, n)
    ids = np.array([f"img_{i:03d}.png" for i in range(n)], dtype=object)
    city = np.array([["Paris", "Oslo", "Lima", "Porto"][i % 4] for i in range(n)], dtype=object)
    return Dataset(name="t", source=Path("t"), kind="vector", n=n, labels=labels,
                   label_names=[str(i) for i in range(10)], ids=ids, metadata={"city": city})


def test_a_bare_word_is_an_exact_label(ds):
    res = search(ds, "7")
    expected = np.array([ds.label_of(i) == "7" for i in range(len(ds))])
    np.testing.assert_array_equal(res.mask, expected)
    # a substring search over every column would also hit ids like img_007/img_170..179
    assert res.count < sum("7" in ds.ids[i] or ds.label_of(i) == "7" for i in range(len(ds)))
    assert res.description.startswith("label = '7'") and f"{expected.sum():,} of 500" in res.description


def test_column_equals_and_contains(ds):
    np.testing.assert_array_equal(search(ds, "city=oslo").mask, np.array([c == "Oslo" for c in ds.metadata["city"]]))
    np.testing.assert_array_equal(search(ds, "city~o").mask, np.array(["o" in c.lower() for c in ds.metadata["city"]]))
    np.testing.assert_array_equal(search(ds, "label=3").mask, search(ds, "3").mask)
    np.testing.assert_array_equal(search(ds, "id~_01").mask, np.array(["_01" in s for s in ds.ids]))


def test_a_word_that_is_no_label_searches_the_ids(ds):
    np.testing.assert_array_equal(search(ds, "img_042.png").mask, np.arange(500) == 42)
    np.testing.assert_array_equal(search(ds, "_04").mask, np.array(["_04" in s for s in ds.ids]))
    assert search(ds, "nothing-like-this").count == 0


def test_empty_and_unknown_column(ds):
    assert search(ds, "  ").mask is None
    with pytest.raises(InputError, match="colour"):
        search(ds, "colour=red")
