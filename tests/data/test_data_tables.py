"""Your own tables: Parquet, Arrow/Feather, Hugging Face save_to_disk folders, CSV/TSV of
numbers (with or without a header), Lightly's embeddings CSV and a .pt tensor. Every file is
written here by numpy / pyarrow / torch / datasets and read back through open_dataset; the
vectors must equal what was written, bit for bit."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.cli import main
from explorer.data import open_dataset
from explorer.core.errors import InputError

V = np.random.default_rng(7).standard_normal((9, 5)).astype(np.float32)


# -- CSV / TSV of numbers ------------------------------------------------------------------------
def test_csv_of_floats_without_header_is_vectors(tmp_path):
    np.savetxt(tmp_path / "v.csv", V, delimiter=",", fmt="%.9g")
    ds = open_dataset(tmp_path / "v.csv")
    assert (ds.format, ds.kind, ds.n) == ("csv", "vector", 9)
    np.testing.assert_array_equal(ds.vectors(), V)  # %.9g round-trips float32 exactly


def test_tsv_with_a_column_number_header_has_no_bogus_row(tmp_path):
    for name, start in (("h0.tsv", 0), ("h1.tsv", 1)):
        header = "\t".join(str(k) for k in range(start, start + 5))
        np.savetxt(tmp_path / name, V, delimiter="\t", fmt="%.9g", header=header, comments="")
        ds = open_dataset(tmp_path / name)
        assert ds.kind == "vector" and ds.n == 9, name
        np.testing.assert_array_equal(ds.vectors(), V)
    np.savetxt(tmp_path / "plain.tsv", V, delimiter="\t", fmt="%.9g")  # no header
    np.testing.assert_array_equal(open_dataset(tmp_path / "plain.tsv").vectors(), V)


def test_csv_with_named_header_labels_and_ids(tmp_path):
    lines = ["name,a,b,c,d,e,label"] + [
        f"item{i}," + ",".join(f"{x:.9g}" for x in V[i]) + f",{'xy'[i % 2]}" for i in range(9)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    ds = open_dataset(tmp_path / "t.csv")
    assert ds.kind == "vector"
    np.testing.assert_array_equal(ds.vectors(), V)
    assert list(ds.ids) == [f"item{i}" for i in range(9)]
    assert ds.label_names == ["x", "y"] and ds.labels.tolist() == [i % 2 for i in range(9)]


def test_lightly_embeddings_csv(tmp_path):
    """Lightly writes filenames, embedding_0..embedding_{D-1}, labels."""
    head = "filenames," + ",".join(f"embedding_{k}" for k in range(5)) + ",labels"
    rows = [f"dir/img_{i}.png," + ",".join(f"{x:.9g}" for x in V[i]) + f",{i % 3}" for i in range(9)]
    (tmp_path / "embeddings.csv").write_text("\n".join([head] + rows) + "\n")
    ds = open_dataset(tmp_path / "embeddings.csv")
    assert (ds.kind, ds.n) == ("vector", 9)
    np.testing.assert_array_equal(ds.vectors(), V)
    assert list(ds.ids) == [f"dir/img_{i}.png" for i in range(9)]
    assert ds.labels.tolist() == [i % 3 for i in range(9)] and ds.label_names == ["0", "1", "2"]


def test_text_tables_stay_text(tmp_path):
    (tmp_path / "r.csv").write_text("review,stars,votes\ngood stuff,5,2\nbad,1,0\n")
    ds = open_dataset(tmp_path / "r.csv")
    assert ds.kind == "text" and ds.texts([0, 1]) == ["good stuff", "bad"]


# -- .pt -------------------------------------------------------------------------------------------
def test_pt_file_with_one_tensor_is_vectors(tmp_path, capsys):
    torch.save(torch.from_numpy(V.astype(np.float64)), tmp_path / "z.pt")
    ds = open_dataset(tmp_path / "z.pt")
    assert (ds.format, ds.kind) == ("torch-tensor", "vector")
    np.testing.assert_array_equal(ds.vectors(), V)
    rc = main(["embed", "--data", str(tmp_path / "z.pt"), "--workspace", str(tmp_path / "w.h5"),
               "--out", str(tmp_path / "o.npy"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), V)
    assert (tmp_path / "o.ids.txt").read_text().splitlines() == [str(i) for i in range(9)]


def test_pt_state_dict_is_refused_in_one_sentence(tmp_path):
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "m.pt")
    with pytest.raises(InputError, match=r"m\.pt: holds a dict .*not one tensor of vectors; open it as an encoder"):
        open_dataset(tmp_path / "m.pt")


# -- Arrow tables ----------------------------------------------------------------------------------
pa = pytest.importorskip("pyarrow")


def _table(vec_type):
    return pa.table({
        "id": [f"r{i}" for i in range(9)],
        "embedding": pa.array([list(map(float, r)) for r in V], type=vec_type),
        "label": ["cat", "dog", "cat", "bird", "dog", "cat", "cat", "dog", "bird"],
        "score": pa.array([float(i) / 2 for i in range(9)]),
        "tag": [f"t{i % 2}" for i in range(9)],
    })


@pytest.mark.parametrize("vec_type", ["fixed", "list64", "large"])
def test_parquet_vectors_labels_ids_metadata(tmp_path, vec_type):
    import pyarrow.parquet as pq

    t = {"fixed": pa.list_(pa.float32(), 5), "list64": pa.list_(pa.float64()),
         "large": pa.large_list(pa.float32())}[vec_type]
    pq.write_table(_table(t), tmp_path / "t.parquet")
    ds = open_dataset(tmp_path / "t.parquet")
    assert (ds.format, ds.kind, ds.n) == ("parquet", "vector", 9)
    np.testing.assert_array_equal(ds.vectors(), V)
    assert list(ds.ids) == [f"r{i}" for i in range(9)]
    assert ds.label_names == ["bird", "cat", "dog"]
    assert [ds.label_names[c] for c in ds.labels] == _table(t).column("label").to_pylist()
    assert set(ds.metadata) == {"id", "score", "tag"}
    np.testing.assert_array_equal(ds.metadata["score"], np.arange(9) / 2)


def test_feather_and_arrow_stream(tmp_path):
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc

    t = _table(pa.list_(pa.float32(), 5))
    feather.write_feather(t, tmp_path / "t.feather")
    with ipc.new_stream(str(tmp_path / "s.arrow"), t.schema) as w:
        w.write_table(t)
    with ipc.new_file(str(tmp_path / "f.arrow"), t.schema) as w:
        w.write_table(t)
    for name in ("t.feather", "s.arrow", "f.arrow"):
        ds = open_dataset(tmp_path / name)
        assert (ds.format, ds.kind) == ("arrow", "vector"), name
        np.testing.assert_array_equal(ds.vectors(), V)


def test_ragged_vectors_are_one_sentence(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"embedding": [[1.0, 2.0], [3.0]]}), tmp_path / "r.parquet")
    with pytest.raises(InputError, match="differ in length"):
        open_dataset(tmp_path / "r.parquet")


def _png(x):
    buf = io.BytesIO()
    Image.fromarray(x, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_parquet_image_bytes_paths_and_text(tmp_path):
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(4)]
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({
        "image": pa.array([{"bytes": _png(x), "path": None} for x in imgs], type=img_type),
        "caption": ["one", "two", "three", "four"],
    }), tmp_path / "b.parquet")
    ds = open_dataset(tmp_path / "b.parquet")
    assert ds.kind == "image" and ds.n == 4
    for i, x in enumerate(imgs):
        np.testing.assert_array_equal(ds.image(i), x)
    assert ds.metadata["caption"].tolist() == ["one", "two", "three", "four"]
    text = open_dataset(tmp_path / "b.parquet", column="caption")
    assert text.kind == "text" and text.texts(range(4)) == ["one", "two", "three", "four"]
    # paths relative to the table's folder
    for i, x in enumerate(imgs):
        Image.fromarray(x, "RGB").save(tmp_path / f"p{i}.png")
    pq.write_table(pa.table({"file": [f"p{i}.png" for i in range(4)], "y": [0, 1, 0, 1]}),
                   tmp_path / "p.parquet")
    ds = open_dataset(tmp_path / "p.parquet")
    assert ds.kind == "image"
    np.testing.assert_array_equal(ds.image(3), imgs[3])


def test_parquet_with_a_corrupt_image_embeds_only_the_readable_rows(tmp_path):
    """The engine leaves the bad row out; the rest equal a direct forward pass on them."""
    import pyarrow.parquet as pq

    from explorer.embed import EmbedParams, embed
    from explorer.encoders.base import Encoder, Preprocess
    from explorer.core.jobs import drain

    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    blobs = [_png(x) for x in imgs]
    blobs[2] = b"\x89PNG broken"
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"image": pa.array([{"bytes": b, "path": None} for b in blobs], type=img_type)}),
                   tmp_path / "c.parquet")
    ds = open_dataset(tmp_path / "c.parquet")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16 * 3, 4)).eval()
    pp = Preprocess(kind="image", size=16, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    res = drain(embed(ds, Encoder(name="lin", source=tmp_path, format="test", module=net, preprocess=pp), EmbedParams(device="cpu", num_workers=0)))
    assert res.rows.tolist() == [0, 1, 3, 4] and [s[0] for s in res.skipped] == ["2"]
    x = np.stack([imgs[i] for i in (0, 1, 3, 4)]).astype(np.float64) / 255.0
    t = torch.from_numpy((x - 0.5) / 0.25).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref = net.double()(t).numpy()
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-5, atol=1e-5)


def test_hf_folder_written_by_pyarrow(tmp_path):
    """The save_to_disk layout (IPC stream + state.json), written here without `datasets`."""
    import pyarrow.ipc as ipc

    d = tmp_path / "ds"
    d.mkdir()
    feats = {"info": {"features": {"vec": {"_type": "Sequence"},
                                   "label": {"_type": "ClassLabel", "names": ["neg", "pos"]}}}}
    t = pa.table({"vec": pa.array([list(map(float, r)) for r in V], type=pa.list_(pa.float32())),
                  "label": [i % 2 for i in range(9)]})
    t = t.replace_schema_metadata({"huggingface": json.dumps(feats)})
    with ipc.new_stream(str(d / "data-00000-of-00001.arrow"), t.schema) as w:
        w.write_table(t)
    (d / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (d / "dataset_info.json").write_text("{}")
    ds = open_dataset(d)
    assert (ds.format, ds.kind) == ("hf-datasets", "vector")
    np.testing.assert_array_equal(ds.vectors(), V)
    assert ds.label_names == ["neg", "pos"] and ds.labels.tolist() == [i % 2 for i in range(9)]


def test_hf_datasets_save_to_disk(tmp_path):
    hf = pytest.importorskip("datasets")
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(6)]
    feats = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=["a", "b", "c"]),
                         "emb": hf.Sequence(hf.Value("float32"))})
    d = hf.Dataset.from_dict({"image": [Image.fromarray(x) for x in imgs], "label": [2, 0, 1, 1, 0, 2],
                              "emb": [list(map(float, r)) for r in V[:6]]}, features=feats)
    hf.DatasetDict({"train": d, "test": d.select([4, 5])}).save_to_disk(str(tmp_path / "dd"))
    ds = open_dataset(tmp_path / "dd")  # vectors win over images by default
    assert (ds.kind, ds.n, ds.options["split"]) == ("vector", 6, "train")
    np.testing.assert_array_equal(ds.vectors(), V[:6])
    assert ds.label_names == ["a", "b", "c"] and ds.labels.tolist() == [2, 0, 1, 1, 0, 2]
    im = open_dataset(tmp_path / "dd", column="image", split="test")
    assert (im.kind, im.n) == ("image", 2)
    np.testing.assert_array_equal(im.image(1), imgs[5])
    with pytest.raises(InputError, match="no split 'val' \\(splits: train, test\\)"):
        open_dataset(tmp_path / "dd", split="val")


def test_formats_lists_the_table_formats(capsys):
    assert main(["formats", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = {f["name"] for f in out["datasets"]}
    assert {"parquet", "arrow", "hf-datasets", "torch-tensor", "csv", "tsv"} <= names


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    import sys

    import pyarrow.parquet as pq

    pq.write_table(_table(pa.list_(pa.float32(), 5)), tmp_path / "t.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(InputError, match=r"needs pyarrow; install it with `pip install embedding-explorer\[tables\]`"):
        open_dataset(tmp_path / "t.parquet")


def test_quoted_csv_reads_the_same_as_plain(tmp_path):
    """Quotes send the file through the csv module instead of numpy.loadtxt: same result."""
    head = "filenames," + ",".join(f"embedding_{k}" for k in range(5)) + ",labels"
    plain = [f"img_{i}.png," + ",".join(f"{x:.9g}" for x in V[i]) + f",{i % 3}" for i in range(9)]
    quoted = [f'"img_{i}.png",' + ",".join(f"{x:.9g}" for x in V[i]) + f",{i % 3}" for i in range(9)]
    (tmp_path / "p.csv").write_text("\n".join([head] + plain) + "\n")
    (tmp_path / "q.csv").write_text("\n".join([head] + quoted) + "\n")
    a, b = open_dataset(tmp_path / "p.csv"), open_dataset(tmp_path / "q.csv")
    for ds in (a, b):
        np.testing.assert_array_equal(ds.vectors(), V)
        assert list(ds.ids) == [f"img_{i}.png" for i in range(9)]
        assert ds.labels.tolist() == [i % 3 for i in range(9)] and ds.label_names == ["0", "1", "2"]


def test_non_finite_vector_value_is_one_sentence(tmp_path):
    (tmp_path / "n.csv").write_text("1.5,2\n3,nan\n")
    with pytest.raises(InputError, match=r"n\.csv: row 2, column '1' is not a finite number\."):
        open_dataset(tmp_path / "n.csv")
