"""Gallery orders of a selection, against plain-Python sorts written here."""

from __future__ import annotations

import math

import numpy as np

from explorer.app.selection import order_items


def test_orders():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(60, 5)).astype(np.float32)
    labels = rng.integers(-1, 4, 60)
    sel = rng.choice(60, 25, replace=False)
    assert order_items(sel).tolist() == sorted(sel.tolist())
    code = lambda i: math.inf if labels[i] < 0 else labels[i]  # noqa: E731
    assert order_items(sel, "label", labels).tolist() == sorted(sel.tolist(), key=lambda i: (code(i), i))
    f = int(sel[3])

    def cosdist(i):
        a, b = V[i].astype(float), V[f].astype(float)
        return 1 - sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    got = order_items(sel, "distance to focus", labels, V, f).tolist()
    assert got == sorted(sel.tolist(), key=lambda i: (round(cosdist(i), 12), i))
    assert got[0] == f
    assert order_items(sel, "distance to focus", labels, V, None).tolist() == sorted(sel.tolist())
