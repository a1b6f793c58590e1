"""Text datasets (.txt/.csv/.tsv/.jsonl), the TensorBoard projector pair, metadata joins."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from explorer.data import attach_metadata, open_dataset
from explorer.core.errors import InputError


def test_txt_skips_blank_lines(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("first line\n\n   \nsecond, with comma\nthird\n", encoding="utf-8")
    ds = open_dataset(p)
    assert (ds.format, ds.kind, ds.n) == ("txt", "text", 3)
    assert ds.texts(range(3)) == ["first line", "second, with comma", "third"]
    assert list(ds.ids) == ["1", "4", "5"]                    # original line numbers
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(InputError, match="blank.txt"):
        open_dataset(tmp_path / "blank.txt")


def test_csv_default_columns_labels_and_metadata(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('id,score,sentence,label,source\n'
                 'a7,0.5,"Hello, world",pos,web\n'
                 'b2,,Bye,neg,book\n'
                 'c9,2,"Quote ""this""",pos,web\n', encoding="utf-8")
    ds = open_dataset(p)
    assert ds.format == "csv" and ds.n == 3
    assert ds.texts([0, 1, 2]) == ["Hello, world", "Bye", 'Quote "this"']
    assert ds.label_names == ["neg", "pos"] and ds.labels.tolist() == [1, 0, 1]
    assert list(ds.ids) == ["a7", "b2", "c9"]
    assert set(ds.metadata) == {"id", "score", "source"}
    sc = ds.metadata["score"]
    assert sc.dtype == np.float64 and sc[0] == 0.5 and np.isnan(sc[1]) and sc[2] == 2.0
    assert ds.metadata["source"].dtype == object and ds.metadata["source"].tolist() == ["web", "book", "web"]
    assert ds.options == {"column": "sentence", "label_column": "label", "id_column": "id"}


def test_csv_first_string_column_and_explicit_column(tmp_path):
    p = tmp_path / "u.csv"
    p.write_text("n,title,body\n1,Short,Long body one\n2,Tiny,Long body two\n")
    assert open_dataset(p).texts([0, 1]) == ["Long body one", "Long body two"]  # "body" is known
    q = tmp_path / "v.csv"
    q.write_text("n,title,notes\n1,Short,x\n2,Tiny,y\n")
    assert open_dataset(q).text(1) == "Tiny"                  # first non-numeric column
    assert open_dataset(q, column="notes").text(0) == "x"
    with pytest.raises(InputError, match=r"v\.csv: no column named 'nope'"):
        open_dataset(q, column="nope")
    r = tmp_path / "nums.csv"
    r.write_text("a,b\n1,2\n3,4\n")
    nums = open_dataset(r)  # a table of numbers is vectors (issue 14), no longer "no text column"
    assert nums.kind == "vector" and nums.vectors().tolist() == [[1, 2], [3, 4]]
    with pytest.raises(InputError, match="no text column"):
        open_dataset(r, column="")


def test_tsv_and_jsonl(tmp_path):
    t = tmp_path / "d.tsv"
    t.write_text("caption\tclass\nred car\tcar\nblue bus\tbus\n")
    ds = open_dataset(t)
    assert ds.format == "tsv" and ds.texts([0, 1]) == ["red car", "blue bus"]
    assert [ds.label_of(i) for i in range(2)] == ["car", "bus"]
    j = tmp_path / "d.jsonl"
    recs = [{"text": "alpha", "label": 1, "meta": {"k": 1}}, {"text": "beta", "label": 0, "len": 4},
            {"text": "gamma", "label": 1}]
    j.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    ds = open_dataset(j)
    assert ds.texts(range(3)) == ["alpha", "beta", "gamma"]
    assert ds.label_names == ["0", "1"] and ds.labels.tolist() == [1, 0, 1]
    assert ds.metadata["meta"].tolist() == ['{"k": 1}', "", ""]
    ln = ds.metadata["len"]
    assert np.isnan(ln[0]) and ln[1] == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        open_dataset(bad)


def test_projector_pair_with_header(tmp_path):
    v = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
    (tmp_path / "vectors.tsv").write_text("\n".join("\t".join(f"{x:g}" for x in r) for r in v) + "\n")
    (tmp_path / "metadata.tsv").write_text("word\tlabel\tcount\nA\tx\t1\nB\ty\t2\nC\tx\t3\nD\ty\t4\n")
    for target in (tmp_path, tmp_path / "vectors.tsv", tmp_path / "metadata.tsv"):
        ds = open_dataset(target)
        assert ds.format == "projector" and ds.kind == "vector"
        np.testing.assert_array_equal(ds.vectors(), v)
        assert ds.label_names == ["x", "y"] and ds.labels.tolist() == [0, 1, 0, 1]
        assert ds.metadata["word"].tolist() == ["A", "B", "C", "D"]
        np.testing.assert_array_equal(ds.metadata["count"], [1.0, 2.0, 3.0, 4.0])


def test_projector_single_column_with_and_without_header(tmp_path):
    (tmp_path / "vectors.tsv").write_text("1\t2\n3\t4\n5\t6\n")
    (tmp_path / "metadata.tsv").write_text("cat\ndog\ncat\n")                  # TensorBoard: no header
    ds = open_dataset(tmp_path)
    assert [ds.label_of(i) for i in range(3)] == ["cat", "dog", "cat"]
    (tmp_path / "metadata.tsv").write_text("species\ncat\ndog\ncat\n")          # one line more: header
    ds = open_dataset(tmp_path)
    assert ds.metadata["species"].tolist() == ["cat", "dog", "cat"] and ds.labels is None
    (tmp_path / "metadata.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match=r"metadata\.tsv: 1 metadata rows for 3 vectors"):
        open_dataset(tmp_path)
    (tmp_path / "metadata.tsv").unlink()
    (tmp_path / "vectors.tsv").write_text("1\t2\n3\n")
    with pytest.raises(InputError, match=r"vectors\.tsv: line 2"):
        open_dataset(tmp_path / "vectors.tsv")


def test_text_table_tsv_is_not_taken_for_vectors(tmp_path):
    (tmp_path / "table.tsv").write_text("text\tscore\nhello\t1\n")
    assert open_dataset(tmp_path / "table.tsv").format == "tsv"
    (tmp_path / "nums.tsv").write_text("0.5\t1.5\n2\t3\n")
    assert open_dataset(tmp_path / "nums.tsv").format == "projector"


def test_fingerprint_text_changes(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a\nb\n")
    fp = open_dataset(p).fingerprint()
    st = os.stat(p)
    p.write_text("a\nc\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert open_dataset(p).fingerprint() != fp
    q = tmp_path / "t.csv"
    q.write_text("a,b\nx,y\n")
    assert open_dataset(q, column="a").fingerprint() != open_dataset(q, column="b").fingerprint()


# -- metadata tables -------------------------------------------------------------------------------
def test_attach_by_row_order(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((3, 2), np.float32))
    ds = open_dataset(tmp_path / "v.npy")
    (tmp_path / "m.csv").write_text("class,size,note\nb,1.5,x\na,2,\nb,,z\n")
    out = attach_metadata(ds, tmp_path / "m.csv")
    assert ds.metadata == {} and ds.labels is None            # the original is untouched
    assert out.label_names == ["a", "b"] and out.labels.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(out.metadata["size"][:2], [1.5, 2.0])
    assert np.isnan(out.metadata["size"][2]) and out.metadata["size"].dtype == np.float64
    assert out.metadata["note"].tolist() == ["x", "", "z"]
    assert list(out.columns())[:2] == ["label", "class"]
    assert out.fingerprint() == ds.fingerprint()
    (tmp_path / "short.csv").write_text("a\n1\n2\n")
    with pytest.raises(InputError, match=r"short\.csv: 2 rows but the dataset 'v' has 3 items"):
        attach_metadata(ds, tmp_path / "short.csv")


def test_attach_by_id_column(tmp_path):
    for rel in ("cat/001.png", "dog/002.png", "dog/003.png"):
        (tmp_path / "im" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "im" / rel)
    ds = open_dataset(tmp_path / "im")
    (tmp_path / "m.tsv").write_text("file\tweight\tlabel\n003.png\t3\tz\nextra.png\t9\tq\n"
                                    "001.png\t1\tx\n002.png\t2\ty\n")
    out = attach_metadata(ds, tmp_path / "m.tsv", id_column="file")
    np.testing.assert_array_equal(out.metadata["weight"], [1.0, 2.0, 3.0])   # dataset order
    assert out.label_names == ["cat", "dog"]                  # labels kept: the dataset had some
    assert out.metadata["label (m.tsv)"].tolist() == ["x", "y", "z"]   # renamed, not hidden
    assert out.columns()["label"].tolist() == ["cat", "dog", "dog"]
    (tmp_path / "m2.tsv").write_text("file\tw\n001.png\t1\n002.png\t2\n")
    with pytest.raises(InputError, match=r"m2\.tsv: 1 of the dataset's 3 items have no row.*003"):
        attach_metadata(ds, tmp_path / "m2.tsv", id_column="file")
    (tmp_path / "m3.tsv").write_text("file\tw\n001.png\t1\n001.png\t2\n")
    with pytest.raises(InputError, match="repeats the id '001.png'"):
        attach_metadata(ds, tmp_path / "m3.tsv", id_column="file")
    with pytest.raises(InputError, match="no column named 'nope'"):
        attach_metadata(ds, tmp_path / "m.tsv", id_column="nope")
