"""Tags and bookmarks without a window (issue 19): the tags column, ``tag:`` search, export,
the workspace record and the session file round trips; bookmark order, stepping and the one
sentence for a bookmark whose model is gone. Expected values are written out here."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from explorer.app.bookmarks import Bookmark, check
from explorer.app.pipeline import MapSettings, Pipeline, run_now
from explorer.app.search import search
from explorer.app.session_file import plan_restore, read_session_file, restore_job
from explorer.app.tags import COLUMN, load_tags, save_tags, tag_items
from explorer.core.errors import InputError
from explorer.app.export import export_selection
from explorer.core.jobs import drain
from explorer.app.session import Session
from explorer.store import TAGS, Workspace

N = 40


@pytest.fixture
def pipe(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "v.npy", rng.normal(size=(N, 6)).astype(np.float32))
    (tmp_path / "meta.csv").write_text("label\n" + "\n".join(str(i % 3) for i in range(N)) + "\n")
    p = Pipeline(Session(tmp_path / "ws.h5"), submit=run_now, settings=MapSettings(method="pca"))
    p.open_dataset(tmp_path / "v.npy", metadata=str(tmp_path / "meta.csv"))
    return p


def test_tags_are_a_column_searched_and_exported(pipe, tmp_path):
    s = pipe.session
    assert tag_items(s, "odd", [1, 3, 5, 7]) == 4
    assert tag_items(s, "small", [0, 1, 2, 3]) == 4
    assert tag_items(s, "odd", [3, 9]) == 1  # 3 was tagged already
    col = s.dataset.columns()[COLUMN]
    expect = {1: "odd, small", 3: "odd, small", 5: "odd", 7: "odd", 9: "odd", 0: "small", 2: "small"}
    assert [col[i] for i in range(N)] == [expect.get(i, "") for i in range(N)]
    res = search(s.dataset, "tag:odd")
    assert np.flatnonzero(res.mask).tolist() == [1, 3, 5, 7, 9]
    assert np.flatnonzero(search(s.dataset, "tag: Small").mask).tolist() == [0, 1, 2, 3]
    out = tmp_path / "sel.csv"
    export_selection(out, s.dataset, [0, 1, 4])
    rows = list(csv.DictReader(open(out)))
    assert [r[COLUMN] for r in rows] == ["small", "odd, small", ""]
    with pytest.raises(InputError):
        tag_items(s, "a,b", [1])
    with pytest.raises(InputError):
        tag_items(s, "x", [])


def test_tags_round_trip_through_the_workspace_and_the_session(pipe, tmp_path):
    s = pipe.session
    tag_items(s, "keep", [2, 4, 6])
    tag_items(s, "drop", [39])
    key = save_tags(s.workspace, s.dataset, s.tags)
    assert Workspace(tmp_path / "ws.h5").has(TAGS, key)
    back = load_tags(Workspace(tmp_path / "ws.h5"), s.dataset)
    assert {n: back.indices(n).tolist() for n in back.names} == {"keep": [2, 4, 6], "drop": [39]}
    s.bookmarks.add(Bookmark("overview", model="precomputed", method="pca", camera=[-1.0, 1.0, -2.0, 2.0],
                             color_by="tags", selection=[2, 4], search="tag:keep", n_items=N,
                             charts={"columns": ["label"], "brushes": [{"column": "label", "bins": ["1"]}]}))
    s.save(tmp_path / "a.eesession")
    assert read_session_file(tmp_path / "a.eesession")["version"] == 3
    p2 = Pipeline(Session(tmp_path / "ws.h5"), submit=run_now, settings=MapSettings(method="pca"))
    plan = plan_restore(tmp_path / "a.eesession")
    p2.restore(drain(restore_job(plan)), plan.data)
    s2 = p2.session
    assert {n: s2.tags.indices(n).tolist() for n in s2.tags.names} == {"keep": [2, 4, 6], "drop": [39]}
    assert s2.dataset.columns()[COLUMN][39] == "drop"
    b = s2.bookmarks.get("overview")
    assert b.camera == [-1.0, 1.0, -2.0, 2.0] and b.selection == [2, 4] and b.charts["brushes"][0]["bins"] == ["1"]
    assert check(b, s2) is None
    # tags stay a column when another table is attached
    (tmp_path / "more.csv").write_text("w\n" + "\n".join(str(i) for i in range(N)) + "\n")
    p2.attach_metadata(tmp_path / "more.csv")
    assert s2.dataset.columns()[COLUMN][4] == "keep"


def test_bookmarks_step_rename_and_refuse_a_missing_model(pipe):
    s = pipe.session
    bm = s.bookmarks
    for name in ("a", "b", "c"):
        bm.add(Bookmark(name, model="precomputed", n_items=N))
    assert bm.names == ["a", "b", "c"] and bm.cursor == 2
    assert [bm.step(1).name for _ in range(4)] == ["a", "b", "c", "a"]
    assert [bm.step(-1).name for _ in range(2)] == ["c", "b"]
    bm.rename("b", "bee")
    with pytest.raises(InputError):
        bm.rename("a", "c")
    bm.remove("a")
    assert bm.names == ["bee", "c"]
    bm.add(Bookmark("c", model="precomputed", method="umap", n_items=N))  # same name: replaced in place
    assert bm.names == ["bee", "c"] and bm.get("c").method == "umap"
    gone = Bookmark("old", model="resnet (2)", n_items=N)
    msg = check(gone, s)
    assert msg == "Bookmark “old” shows the model “resnet (2)”, which is no longer open; open it again to restore this view."
    assert "another dataset" in check(Bookmark("x", n_items=N + 1), s)
