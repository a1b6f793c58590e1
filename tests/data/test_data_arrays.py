"""Arrays: .npy / .npz / HDF5 shapes, kinds, labels, keys, errors and fingerprints."""

import os
import pickle

import h5py
import numpy as np
import pytest

from explorer.data import open_dataset
from explorer.core.errors import InputError

RNG = np.random.default_rng(0)


def test_npy_vectors(tmp_path):
    x = RNG.normal(size=(7, 5)).astype(np.float64)
    np.save(tmp_path / "v.npy", x)
    ds = open_dataset(tmp_path / "v.npy")
    assert (ds.format, ds.kind, ds.n, ds.labels) == ("npy", "vector", 7, None)
    v = ds.vectors()
    assert v.dtype == np.float32 and v.shape == (7, 5)
    np.testing.assert_allclose(v, x.astype(np.float32))
    np.testing.assert_array_equal(ds.vectors([6, 0, 6]), x[[6, 0, 6]].astype(np.float32))
    assert list(ds.ids) == [str(i) for i in range(7)]
    with pytest.raises(TypeError):
        ds.image(0)


def test_npy_labels_path(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "y.txt").write_text("b\na\nb\n")
    ds = open_dataset(tmp_path / "v.npy", labels_path="y.txt")
    assert ds.label_names == ["a", "b"] and ds.labels.tolist() == [1, 0, 1]
    (tmp_path / "y2.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match="labels"):
        open_dataset(tmp_path / "v.npy", labels_path="y2.txt")


@pytest.mark.parametrize("layout", ["nhwc", "nhw", "nchw", "nhw1", "rgba"])
def test_image_layouts_uint8(tmp_path, layout):
    base = RNG.integers(0, 256, size=(4, 6, 8, 3), dtype=np.uint8)        # N H W C
    grey = base[..., 0]
    arr, want = {
        "nhwc": (base, base),
        "nhw": (grey, np.repeat(grey[..., None], 3, -1)),
        "nchw": (np.ascontiguousarray(base.transpose(0, 3, 1, 2)), base),
        "nhw1": (grey[..., None], np.repeat(grey[..., None], 3, -1)),
        "rgba": (np.concatenate([base, np.full((4, 6, 8, 1), 9, np.uint8)], -1), base),
    }[layout]
    np.save(tmp_path / "im.npy", arr)
    ds = open_dataset(tmp_path / "im.npy")
    assert ds.kind == "image" and ds.n == 4
    np.testing.assert_array_equal(ds.image(2), want[2])
    out = ds.images([3, 1], 6)                   # shorter side is 6 already: crop cols 1..7
    np.testing.assert_array_equal(out, want[[3, 1]][:, :, 1:7])
    arr2, ok = ds.read_images([0], 6)
    assert ok.tolist() == [True] and arr2.shape == (1, 6, 6, 3)


@pytest.mark.parametrize("top", [1.0, 255.0])
def test_float_images_range_detected(tmp_path, top):
    q = RNG.integers(0, 256, size=(3, 4, 4, 3))                         # the intended pixels
    np.save(tmp_path / "f.npy", (q / 255.0 * top).astype(np.float32))
    ds = open_dataset(tmp_path / "f.npy")
    assert ds.value_range[1] == top
    np.testing.assert_array_equal(ds.image(1).astype(int), q[1])


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5, 6), (2, 5, 6, 7)])
def test_wrong_rank_or_channels(tmp_path, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape, np.float32))
    with pytest.raises(InputError, match="bad.npy") as e:
        open_dataset(tmp_path / "bad.npy")
    assert str(shape).replace(" ", "") in str(e.value).replace(" ", "")


def test_npz_keys_labels_and_metadata(tmp_path):
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    names = np.array(["dog", "cat", "dog", "eel", "cat", "dog"])
    np.savez(tmp_path / "a.npz", embeddings=x, labels=names, score=np.arange(6) * 0.5)
    ds = open_dataset(tmp_path / "a.npz")
    assert ds.format == "npz" and ds.options["key"] == "embeddings"
    assert ds.label_names == ["cat", "dog", "eel"]
    assert [ds.label_names[c] for c in ds.labels] == names.tolist()
    np.testing.assert_array_equal(ds.metadata["score"], np.arange(6) * 0.5)
    np.testing.assert_array_equal(ds.vectors([5, 1]), x[[5, 1]])


def test_npz_int_labels_with_names_and_wrong_length(tmp_path):
    x = np.zeros((4, 2), np.float32)
    np.savez(tmp_path / "b.npz", x=x, y=np.array([2, 0, 2, 1]), class_names=np.array(["a", "b", "c"]))
    ds = open_dataset(tmp_path / "b.npz")
    assert ds.labels.tolist() == [2, 0, 2, 1] and ds.label_names == ["a", "b", "c"]
    np.savez(tmp_path / "c.npz", x=x, y=np.array([0, 1, 1]))
    with pytest.raises(InputError, match=r"c\.npz.*labels"):
        open_dataset(tmp_path / "c.npz", labels_key="y")


def test_npz_ambiguous_lists_candidates(tmp_path):
    np.savez(tmp_path / "amb.npz", first=np.zeros((3, 2)), second=np.zeros((3, 4)))
    with pytest.raises(InputError, match="first.*second.*key"):
        open_dataset(tmp_path / "amb.npz")
    ds = open_dataset(tmp_path / "amb.npz", key="second")
    assert ds.vectors().shape == (3, 4)
    with pytest.raises(InputError, match="no array named 'third'"):
        open_dataset(tmp_path / "amb.npz", key="third")


def _h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=True if np.ndim(v) > 1 else None)
    return path


def test_hdf5_lazy_batches_labels_and_pickle(tmp_path):
    x = RNG.normal(size=(50, 8)).astype(np.float32)
    y = RNG.integers(0, 3, 50)
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("train")
        g.create_dataset("feats", data=x, chunks=(10, 8))
        g.create_dataset("y", data=y)
        g["y"].attrs["label_names"] = ["zero", "one", "two"]
        f.create_dataset("other", data=np.zeros((50, 2)))
    ds = open_dataset(p, key="train/feats", labels_key="train/y")
    assert ds.format == "hdf5" and ds.n == 50
    assert ds.labels.tolist() == y.tolist() and ds.label_names == ["zero", "one", "two"]
    idx = [49, 3, 3, 20, 0]                                   # unsorted, repeated, sparse
    np.testing.assert_array_equal(ds.vectors(idx), x[idx])
    np.testing.assert_array_equal(ds.vectors(range(10, 14)), x[10:14])
    clone = pickle.loads(pickle.dumps(ds))                   # as in a DataLoader worker
    np.testing.assert_array_equal(clone.vectors([7]), x[[7]])
    ds.close()
    np.testing.assert_array_equal(ds.vectors([1]), x[[1]])   # reopens
    ds.close()


def test_hdf5_images_and_string_labels(tmp_path):
    im = RNG.integers(0, 256, size=(5, 10, 12), dtype=np.uint8)
    lab = np.array([b"x", b"y", b"x", b"z", b"y"])
    p = _h5(tmp_path / "im.hdf5", images=im, label=lab)
    ds = open_dataset(p)
    assert ds.kind == "image" and ds.label_names == ["x", "y", "z"]
    assert ds.labels.tolist() == [0, 1, 0, 2, 1]
    np.testing.assert_array_equal(ds.image(4), np.repeat(im[4][..., None], 3, -1))


def test_hdf5_without_arrays_and_workspace_rejected(tmp_path):
    p = _h5(tmp_path / "none.h5", only=np.arange(5))
    with pytest.raises(InputError, match=r"none\.h5: no array of vectors"):
        open_dataset(p)
    w = tmp_path / "ws.h5"
    with h5py.File(w, "w") as f:
        f.attrs["format"] = "embedding-explorer-workspace"
        f.create_dataset("embeddings/x/vectors", data=np.zeros((4, 3)))
    from explorer.data import DATASETS

    assert "hdf5" not in [e.name for e in DATASETS.find(w)]
    # a workspace opens as its embeddings (format "workspace"); this one has no version
    with pytest.raises(InputError, match="ws.h5 is a workspace without a valid format version"):
        open_dataset(w)
    with pytest.raises(InputError, match="workspace, not a dataset"):
        open_dataset(w, fmt="hdf5")
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="fake.h5"):
        open_dataset(tmp_path / "fake.h5")


def test_unsupported_file_and_unknown_option(tmp_path):
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(InputError, match=r"x\.xyz: not a dataset format"):
        open_dataset(tmp_path / "x.xyz")
    np.save(tmp_path / "v.npy", np.zeros((2, 2)))
    with pytest.raises(InputError, match="unknown option"):
        open_dataset(tmp_path / "v.npy", colour="red")
    with pytest.raises(InputError, match="Unknown dataset format 'nope'"):
        open_dataset(tmp_path / "v.npy", fmt="nope")


def test_fingerprint_hashes_contents(tmp_path):
    p = tmp_path / "v.npy"
    np.save(p, np.zeros((4, 3), np.float32))
    fp = open_dataset(p).fingerprint()
    assert open_dataset(p).fingerprint() == fp
    st = os.stat(p)
    a = np.zeros((4, 3), np.float32)
    a[2, 1] = 1.0
    np.save(p, a)                                             # same size...
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))          # ...same mtime
    assert os.stat(p).st_size == st.st_size
    assert open_dataset(p).fingerprint() != fp                # contents differ
    np.savez(tmp_path / "two.npz", x=np.zeros((3, 2)), z=np.ones((3, 2)))
    assert open_dataset(tmp_path / "two.npz", key="x").fingerprint() != \
        open_dataset(tmp_path / "two.npz", key="z").fingerprint()
