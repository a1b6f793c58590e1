"""Image folders: labels from subfolders, modes, resize/crop, truncated files, fingerprints."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from explorer.data import open_dataset
from explorer.core.errors import InputError
from explorer.core.jobs import drain


def _save(path, arr, mode=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path, **kw)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    _save(root / "cat" / "b.png", rgb)
    _save(root / "cat" / "a.jpg", np.full((50, 40, 3), 90, np.uint8), quality=95)
    _save(root / "dog" / "grey.png", np.full((16, 16), 77, np.uint8), "L")
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 1] = 150
    rgba[..., 3] = 10
    _save(root / "dog" / "alpha.webp", rgba, "RGBA", lossless=True)
    pal = Image.new("P", (10, 14))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.paste(1, (0, 0, 10, 14))
    pal.save(root / "dog" / "pal.bmp")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "x.png", rgb)
    return root


def test_labels_order_ids_and_modes(folder):
    ds = open_dataset(folder)
    assert ds.format == "image-folder" and ds.kind == "image"
    assert list(ds.ids) == ["cat/a.jpg", "cat/b.png", "dog/alpha.webp", "dog/grey.png", "dog/pal.bmp"]
    assert ds.label_names == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    assert list(ds.metadata) == ["path", "class"]
    assert ds.metadata["class"].tolist() == ["cat", "cat", "dog", "dog", "dog"]
    assert ds.label_of(3) == "dog"
    full = [ds.image(i) for i in range(ds.n)]
    assert [a.shape for a in full] == [(50, 40, 3), (20, 30, 3), (12, 12, 3), (16, 16, 3), (14, 10, 3)]
    assert all(a.dtype == np.uint8 for a in full)
    assert np.abs(full[0].astype(int) - 90).max() <= 2           # JPEG, near-lossless
    assert (full[1] == [200, 0, 0]).all()                         # RGB PNG
    assert (full[2] == [0, 150, 0]).all()                         # RGBA: alpha dropped
    assert (full[3] == 77).all()                                  # grey -> 3 equal channels
    assert (full[4] == [10, 20, 30]).all()                        # palette -> its colour
    batch = ds.images(range(ds.n), 8)
    assert batch.shape == (5, 8, 8, 3) and batch.dtype == np.uint8
    assert (batch[3] == 77).all() and (batch[4] == [10, 20, 30]).all()


def test_flat_folder_is_unlabelled(tmp_path):
    for k in range(3):
        _save(tmp_path / f"{k}.png", np.full((5, 5, 3), k, np.uint8))
    ds = open_dataset(tmp_path)
    assert ds.labels is None and ds.label_names == [] and ds.n == 3
    assert list(ds.columns()) == ["path"]


def test_resize_shorter_side_and_centre_crop(tmp_path):
    # R = 6 * column index: a linear ramp survives any symmetric resampling filter, so after
    # halving (40x20 -> 20x10) output column c averages source columns 2c, 2c+1 -> 6*(2c+0.5);
    # the centre 10 columns of the 20 are c = 5..14.
    w, h = 40, 20
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (6 * np.arange(w))[None, :]
    _save(tmp_path / "ramp.png", a)
    out = open_dataset(tmp_path).image(0, 10)
    assert out.shape == (10, 10, 3)
    expected = 6 * (2 * np.arange(5, 15) + 0.5)
    assert np.abs(out[:, :, 0].astype(float) - expected[None, :]).max() <= 1.0
    # tall image: the crop is taken from the middle rows
    t = np.zeros((60, 20, 3), np.uint8)
    t[:16] = 255                                           # white bands top and bottom
    t[44:] = 255
    _save(tmp_path / "tall" / "t.png", t)
    tall = open_dataset(tmp_path / "tall").image(0, 10)   # -> 10 x 30, crop rows 10..20
    assert tall.shape == (10, 10, 3) and tall.max() <= 1   # only the black middle survives


def test_thumbnail_keeps_aspect(folder):
    ds = open_dataset(folder)
    th = ds.thumbnail(0, 25)                               # 40 wide x 50 high
    assert th.shape == (25, 20, 3)


def test_truncated_and_garbage_images_are_skipped_and_counted(tmp_path):
    good = np.full((32, 32, 3), 120, np.uint8)
    _save(tmp_path / "a" / "good.jpg", good)
    _save(tmp_path / "a" / "trunc.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "a" / "trunc.jpg").read_bytes()
    (tmp_path / "a" / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "garbage.png").write_bytes(b"this is not a png")
    ds = open_dataset(tmp_path)
    assert ds.n == 3
    with pytest.raises(InputError, match="trunc.jpg"):
        ds.image(1, 16)
    with pytest.raises(InputError, match="garbage.png"):
        ds.images([0, 2], 16)
    arr, ok = ds.read_images([0, 1, 2, 1], 16)
    assert arr.shape == (4, 16, 16, 3)
    assert ok.tolist() == [True, False, False, False]
    assert (arr[1:] == 0).all() and np.abs(arr[0].astype(int) - 120).max() <= 2
    assert sorted(p for p, _ in ds.skipped) == ["a/trunc.jpg", "b/garbage.png"]  # once each
    assert ds.describe()["skipped"] == 2
    assert ds.thumbnail(1) is None


def test_verify_job_finds_bad_files(tmp_path):
    _save(tmp_path / "ok.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    ds = open_dataset(tmp_path)
    bad = drain(ds.verify())
    assert [p for p, _ in bad] == ["bad.jpg"] and len(ds.skipped) == 1


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="contains no images") as e:
        open_dataset(tmp_path / "empty")
    assert "empty" in str(e.value)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("hi")
    with pytest.raises(InputError, match="no images"):
        open_dataset(tmp_path / "docs")
    with pytest.raises(InputError, match="no such file"):
        open_dataset(tmp_path / "nope")


def test_fingerprint_changes_with_files_and_survives_pickle(folder):
    ds = open_dataset(folder)
    fp = ds.fingerprint()
    assert fp == open_dataset(folder).fingerprint() and len(fp) == 64
    assert pickle.loads(pickle.dumps(ds)).fingerprint() == fp
    target = folder / "cat" / "b.png"
    _save(target, np.full((20, 31, 3), 5, np.uint8))            # different content and size
    assert open_dataset(folder).fingerprint() != fp
    fp2 = open_dataset(folder).fingerprint()
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched only
    assert open_dataset(folder).fingerprint() != fp2
    _save(folder / "cat" / "new.png", np.zeros((4, 4, 3), np.uint8))  # a file added
    assert open_dataset(folder).n == 6


def test_more_modes_through_the_resize_path(tmp_path):
    Image.fromarray(np.full((20, 24), 60, np.uint8), "L").save(tmp_path / "grey.jpg", quality=95)
    Image.new("CMYK", (20, 20), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # white
    Image.fromarray(np.full((10, 10), 40000, np.uint16)).save(tmp_path / "deep.png")      # I;16
    gif = Image.new("P", (9, 9))
    gif.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    gif.paste(1, (0, 0, 9, 9))
    gif.save(tmp_path / "t.gif", transparency=0)
    ds = open_dataset(tmp_path)
    assert list(ds.ids) == ["cmyk.jpg", "deep.png", "grey.jpg", "t.gif"]
    out = ds.images(range(4), 8)
    assert out.shape == (4, 8, 8, 3)
    assert out[0].min() >= 250                                   # CMYK (0,0,0,0) is white
    assert (out[1] == round(40000 * 255 / 65535)).all()          # 16-bit scaled to 8 bits
    assert np.abs(out[2].astype(int) - 60).max() <= 2            # grey JPEG (decoded in draft)
    assert (out[3] == [0, 0, 255]).all()                         # palette colour, alpha dropped


def test_images_beside_class_folders_are_unlabelled(tmp_path):
    for rel in ("a/1.png", "b/2.png", "loose.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (3, 3)).save(tmp_path / rel)
    ds = open_dataset(tmp_path)
    assert ds.label_names == ["a", "b"] and ds.labels.tolist() == [0, 1, -1]
    assert ds.label_of(2) is None and ds.metadata["class"].tolist() == ["a", "b", ""]
