"""Metadata sidecars beyond text tables (issue 18 item 9). Labels from a ``.npy`` file attach
like a metadata table: a 1-D array of ints or strings of the dataset's length becomes the labels
(or a "label (<file>)" column when the dataset has its own); anything else is refused in one
sentence naming the file. A Parquet table attaches like a CSV. The expected classes are worked
out here from the raw arrays, not by the code under test."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.app.pipeline import MapSettings, Pipeline, read_dataset, run_now
from explorer.app.session_file import plan_restore, restore_job
from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.app.session import Session

N = 60


def _pipeline(tmp_path):
    p = Pipeline(Session(tmp_path / "ws.h5"), submit=run_now, settings=MapSettings(method="pca"))
    said = {"info": [], "error": []}
    p.info.connect(said["info"].append)
    p.error.connect(said["error"].append)
    return p, said


@pytest.fixture
def vectors(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "v.npy"
    np.save(path, rng.normal(size=(N, 8)).astype(np.float32))
    return path


def _one_sentence(msg: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg


@pytest.mark.parametrize("kind", ["int", "str"])
def test_npy_labels_become_the_labels(tmp_path, vectors, kind):
    p, said = _pipeline(tmp_path)
    p.open_dataset(vectors)
    assert p.session.dataset.labels is None
    raw = np.array([7, 3, 11, 3] * (N // 4))
    values = raw if kind == "int" else np.array([f"class-{v}" for v in raw])
    np.save(tmp_path / "labels.npy", values)
    p.attach_metadata(tmp_path / "labels.npy")
    ds = p.session.dataset
    # independent: every item's label reads back as the value saved for it, 3 classes
    assert [ds.label_of(i) for i in range(N)] == [str(v) for v in values.tolist()]
    assert sorted(ds.label_names) == sorted({str(v) for v in values.tolist()})
    assert "3 classes" in said["info"][-1] and said["error"] == []
    assert p.session.metadata_source["path"].endswith("labels.npy")


def test_npy_labels_on_a_labelled_dataset_are_a_column(tmp_path, vectors):
    p, _ = _pipeline(tmp_path)
    y = np.arange(N) % 2
    table = tmp_path / "meta.csv"
    table.write_text("label\n" + "\n".join(f"own{v}" for v in y) + "\n")
    p.open_dataset(vectors, metadata=str(table))
    assert p.session.dataset.label_of(1) == "own1"
    other = np.array(["x", "y", "z"] * (N // 3))
    np.save(tmp_path / "pred.npy", other)
    p.attach_metadata(tmp_path / "pred.npy")
    ds = p.session.dataset
    assert [ds.label_of(i) for i in range(N)] == [f"own{v}" for v in y]  # own labels kept
    assert list(ds.columns()["label (pred.npy)"]) == other.tolist()


def test_a_wrong_length_names_the_file_and_both_lengths(tmp_path, vectors):
    p, _ = _pipeline(tmp_path)
    p.open_dataset(vectors)
    before = p.session.dataset
    np.save(tmp_path / "short.npy", np.zeros(N - 5, np.int64))
    with pytest.raises(InputError) as e:
        p.attach_metadata(tmp_path / "short.npy")
    msg = str(e.value)
    assert "short.npy" in msg and f"{N - 5}" in msg and f"{N}" in msg
    _one_sentence(msg)
    assert p.session.dataset is before


@pytest.mark.parametrize("bad, words", [
    (np.zeros((N, 2), np.int64), "1-D"),
    (np.linspace(0, 1, N), "fractional"),
    (np.array([{"a": 1}] * N, dtype=object), "Python objects"),
])
def test_unusable_label_arrays_are_refused_in_one_sentence(tmp_path, vectors, bad, words):
    p, _ = _pipeline(tmp_path)
    p.open_dataset(vectors)
    np.save(tmp_path / "bad.npy", bad, allow_pickle=True)
    with pytest.raises(InputError) as e:
        p.attach_metadata(tmp_path / "bad.npy")
    assert "bad.npy" in str(e.value) and words in str(e.value)
    _one_sentence(str(e.value))


def test_npy_labels_are_read_back_when_a_session_reopens(tmp_path, vectors):
    p, _ = _pipeline(tmp_path)
    p.open_dataset(vectors)
    values = np.array(["a", "b", "c"] * (N // 3))
    np.save(tmp_path / "labels.npy", values)
    p.attach_metadata(tmp_path / "labels.npy")
    p.session.save(tmp_path / "s.eesession")
    result = drain(restore_job(plan_restore(tmp_path / "s.eesession")))
    assert [result.dataset.label_of(i) for i in range(N)] == values.tolist()


def test_read_dataset_joins_what_opening_joins(tmp_path, vectors):
    """The preview reads through read_dataset: the classes and columns opening will give."""
    table = tmp_path / "meta.csv"
    table.write_text("class,group\n" + "\n".join(f"c{i % 4},g{i % 2}" for i in range(N)) + "\n")
    d = read_dataset(vectors, metadata=str(table)).describe()
    assert d["classes"] == 4 and d["columns"] == ["class", "group"]
    np.save(tmp_path / "labels.npy", np.arange(N) % 5)
    assert read_dataset(vectors, metadata=str(tmp_path / "labels.npy")).describe()["classes"] == 5


def test_a_parquet_sidecar_attaches_like_a_csv(tmp_path, vectors):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    y = [f"k{i % 3}" for i in range(N)]
    score = [float(i) / 2 for i in range(N)]
    pq.write_table(pa.table({"label": y, "score": score, "note": [None if i % 5 == 0 else f"n{i}" for i in range(N)]}),
                   tmp_path / "meta.parquet")
    ds = read_dataset(vectors, metadata=str(tmp_path / "meta.parquet"))
    assert [ds.label_of(i) for i in range(N)] == y
    np.testing.assert_array_equal(ds.columns()["score"], np.asarray(score))
    assert ds.describe()["columns"] == ["label", "score", "note"] and ds.describe()["classes"] == 3
    pq.write_table(pa.table({"label": y[:-1]}), tmp_path / "short.parquet")
    with pytest.raises(InputError) as e:
        read_dataset(vectors, metadata=str(tmp_path / "short.parquet"))
    assert "short.parquet" in str(e.value) and f"{N - 1} rows" in str(e.value)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError) as e:
        read_dataset(vectors, metadata=str(tmp_path / "broken.parquet"))
    assert "broken.parquet" in str(e.value)
    _one_sentence(str(e.value))
