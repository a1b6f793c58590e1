"""The HDF5 workspace: round trip, versioning, refusal of foreign files, atomic writes."""

import errno
import hashlib
import json
import subprocess
import sys
import textwrap
import threading

import h5py
import numpy as np
import pytest

import explorer.store as store
from explorer.core.errors import WorkspaceError
from explorer.store import FORMAT, FORMAT_VERSION, RecordNotFound, Workspace, content_key


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_round_trip_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "vectors": rng.standard_normal((1000, 37)).astype(np.float32),
        "indices": rng.integers(0, 10**12, (1000, 5)),
        "mask": rng.random(1000) > 0.5,
        "names": np.array(["a", "ünïcode", "", "x" * 300]),
        "scalar": np.float64(3.5),
        "empty": np.zeros((0, 4), np.float32),
    }
    attrs = {"model": "m", "n": 1000, "nested": {"k": [1, 2.5, None, "s"]}, "ok": True}
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "k1", arrays, attrs)
    rec = Workspace(tmp_path / "w.h5").get("embeddings", "k1")  # a fresh object reads the file
    assert rec.group == "embeddings" and rec.key == "k1"
    assert rec.attrs == attrs
    for name, a in arrays.items():
        b = rec.arrays[name]
        assert b.dtype == a.dtype or (a.dtype.kind == "U" and b.dtype.kind == "U"), name
        assert b.shape == a.shape, name
        np.testing.assert_array_equal(b, a)
    assert ws.get("embeddings", "k1", names=["mask"]).arrays.keys() == {"mask"}


def test_file_format_attributes(tmp_path):
    Workspace(tmp_path / "w.h5").put("knn", "a", {"indices": np.arange(6).reshape(3, 2)}, {"k": 2})
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert f.attrs["format"] == "embedding-explorer-workspace" == FORMAT
        assert int(f.attrs["version"]) == 2 == FORMAT_VERSION
        ds = f["knn/a/indices"]
        assert ds.chunks is not None  # chunked storage
        assert json.loads(f["knn/a"].attrs["attrs"]) == {"k": 2}


def test_has_list_overwrite_delete(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    assert ws.list("layouts") == [] and not ws.has("layouts", "a")
    for k in ("b", "a", "c"):
        ws.put("layouts", k, {"coords": np.full((4, 2), ord(k), np.float32)}, {"name": k})
    assert [k for k, _ in ws.list("layouts")] == ["b", "a", "c"]  # order written
    ws.put("layouts", "a", {"coords": np.zeros((2, 2), np.float32)}, {"name": "a2"})
    assert dict(ws.list("layouts"))["a"] == {"name": "a2"}
    assert ws.get("layouts", "a").arrays["coords"].shape == (2, 2)
    assert ws.delete("layouts", "b") is True
    assert ws.delete("layouts", "b") is False
    assert [k for k, _ in ws.list("layouts")] == ["c", "a"]  # "a" was rewritten last
    with pytest.raises(RecordNotFound) as err:
        ws.get("layouts", "b")
    assert isinstance(err.value, KeyError) and isinstance(err.value, WorkspaceError)
    assert str(err.value) == "w.h5 has no layouts record b."


def test_deleted_space_is_reclaimed(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "small", {"vectors": np.ones((10, 4), np.float32)}, {})
    small = (tmp_path / "w.h5").stat().st_size
    ws.put("embeddings", "big", {"vectors": np.ones((2000, 512), np.float32)}, {})
    assert (tmp_path / "w.h5").stat().st_size > small + 2000 * 512 * 4
    ws.delete("embeddings", "big")
    assert (tmp_path / "w.h5").stat().st_size < small + 64 * 1024


def test_content_key_matches_an_independent_hash():
    parts = ("abc", {"b": 2, "a": [1, 2.5]}, None, (3, "x"))
    expected = hashlib.sha256(
        json.dumps(["abc", {"a": [1, 2.5], "b": 2}, None, [3, "x"]], sort_keys=True,
                   separators=(",", ":")).encode()).hexdigest()[:32]
    assert content_key(*parts) == expected
    assert content_key("abc", {"a": [1, 2.5], "b": 2}, None, [3, "x"]) == expected
    assert content_key("abc", {"a": [1, 2.5], "b": 3}, None, [3, "x"]) != expected
    assert len(expected) == 32 and int(expected, 16) >= 0


def test_bad_names_and_attrs_rejected(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    with pytest.raises(ValueError):
        ws.put("embeddings", "a/b", {}, {})
    with pytest.raises(ValueError):
        ws.put("embeddings", "k", {}, {"x": object()})
    assert ws.list("embeddings") == []


# -- foreign and newer files -------------------------------------------------------------------
def test_non_workspace_hdf5_is_refused(tmp_path):
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    before = sha(p)
    with pytest.raises(WorkspaceError) as err:
        Workspace(p)
    assert str(err.value) == "data.h5 is an HDF5 file but not an Embedding Explorer workspace."
    assert sha(p) == before


def test_newer_version_is_refused_before_reading(tmp_path):
    p = tmp_path / "w.h5"
    Workspace(p).put("embeddings", "a", {"vectors": np.ones((2, 2), np.float32)}, {})
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = FORMAT_VERSION + 1
    before = sha(p)
    with pytest.raises(WorkspaceError, match=r"w\.h5 was written by a newer Embedding Explorer .*format 3.*update"):
        Workspace(p)
    assert sha(p) == before


def test_newer_version_appearing_later_is_refused_by_every_call(tmp_path):
    p = tmp_path / "w.h5"
    ws = Workspace(p)
    ws.put("embeddings", "a", {"vectors": np.ones((2, 2), np.float32)}, {})
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = FORMAT_VERSION + 5
    for call in (lambda: ws.has("embeddings", "a"), lambda: ws.get("embeddings", "a"),
                 lambda: ws.list("embeddings"), lambda: ws.put("embeddings", "b", {}, {})):
        with pytest.raises(WorkspaceError, match="newer"):
            call()


@pytest.mark.parametrize("content", [b"", b"hello, this is not HDF5\n" * 100])
def test_garbage_file_is_refused(tmp_path, content):
    p = tmp_path / "notes.h5"
    p.write_bytes(content)
    with pytest.raises(WorkspaceError) as err:
        Workspace(p)
    assert str(err.value) == "notes.h5 is not an HDF5 file, so it is not an Embedding Explorer workspace."
    assert p.read_bytes() == content


def test_folder_is_refused(tmp_path):
    with pytest.raises(WorkspaceError, match="is a folder"):
        Workspace(tmp_path)


# -- atomic writes -----------------------------------------------------------------------------
def _ws_with_record(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    old = np.arange(40000, dtype=np.float32).reshape(400, 100)
    ws.put("embeddings", "old", {"vectors": old}, {"model": "m"})
    return ws, old


def test_disk_full_mid_put_leaves_the_workspace_unchanged(tmp_path, monkeypatch):
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)
    calls = []
    real = store._write_block

    def disk_fills_up(dset, start, block):  # the environment: the second block hits a full disk
        calls.append(start)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(dset, start, block)

    monkeypatch.setattr(store, "WRITE_BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(store, "_write_block", disk_fills_up)
    with pytest.raises(WorkspaceError) as err:
        ws.put("embeddings", "new", {"vectors": np.ones((1000, 100), np.float32)}, {})
    assert str(err.value) == "Disk full while writing w.h5; the workspace is unchanged."
    assert len(calls) == 2
    assert sha(ws.path) == before
    assert leftovers(tmp_path) == []
    assert not ws.has("embeddings", "new")
    np.testing.assert_array_equal(ws.get("embeddings", "old").arrays["vectors"], old)


def test_any_failure_mid_put_leaves_the_workspace_unchanged(tmp_path, monkeypatch):
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)

    def interrupted(dset, start, block):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_block", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ws.put("embeddings", "old", {"vectors": np.ones((10, 10), np.float32)}, {"model": "other"})
    assert sha(ws.path) == before and leftovers(tmp_path) == []
    assert ws.get("embeddings", "old").attrs == {"model": "m"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE behaviour checked on Linux")
def test_real_write_failure_inside_hdf5_leaves_the_workspace_unchanged(tmp_path):
    """No monkeypatching: a child process may write files of at most ~1.5 MB, so HDF5's own
    C-level write of a 4 MB array fails (EFBIG) half way."""
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)
    limit = ws.path.stat().st_size + 1_500_000
    code = textwrap.dedent(f"""
        import resource, signal, numpy as np
        from explorer.store import Workspace
        from explorer.core.errors import WorkspaceError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        ws = Workspace({str(ws.path)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
        try:
            ws.put("embeddings", "new", {{"vectors": np.ones((10000, 100), np.float32)}}, {{}})
        except WorkspaceError as e:
            print("ERR", e)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "ERR Disk full while writing w.h5; the workspace is unchanged." in res.stdout, res.stdout + res.stderr
    assert sha(ws.path) == before and leftovers(tmp_path) == []
    np.testing.assert_array_equal(Workspace(ws.path).get("embeddings", "old").arrays["vectors"], old)


def test_not_enough_free_space_is_refused_up_front(tmp_path, monkeypatch):
    ws, _ = _ws_with_record(tmp_path)
    before = sha(ws.path)
    monkeypatch.setattr(store, "_disk_free", lambda folder: 1000)
    with pytest.raises(WorkspaceError, match="^Disk full while writing w.h5; the workspace is unchanged.$"):
        ws.put("embeddings", "new", {"vectors": np.ones((10, 10), np.float32)}, {})
    assert sha(ws.path) == before and leftovers(tmp_path) == []


def test_threads_writing_at_once_lose_nothing(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    errors = []

    def writer(t):
        try:
            w = Workspace(tmp_path / "w.h5")  # separate objects share the per-path lock
            for i in range(4):
                w.put("layouts", f"t{t}-{i}", {"coords": np.full((50, 2), t * 10 + i, np.float32)}, {"i": i})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    keys = {k for k, _ in ws.list("layouts")}
    assert keys == {f"t{t}-{i}" for t in range(3) for i in range(4)}
    assert ws.get("layouts", "t2-3").arrays["coords"][0, 0] == 23


def test_version_1_files_still_open_and_are_upgraded_on_write(tmp_path):
    """Version 1 (before embeddings records could leave unreadable items out) reads as it is."""
    p = tmp_path / "w.h5"
    v = np.arange(6, dtype=np.float32).reshape(3, 2)
    Workspace(p).put("embeddings", "a", {"vectors": v}, {"n": 3})
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = 1
    ws = Workspace(p)
    np.testing.assert_array_equal(ws.get("embeddings", "a").arrays["vectors"], v)
    ws.put("knn", "b", {"indices": np.zeros((3, 1), np.int64)}, {})
    with h5py.File(p, "r") as f:
        assert int(f.attrs["version"]) == 2
    np.testing.assert_array_equal(Workspace(p).get("embeddings", "a").arrays["vectors"], v)


def test_jsonable_is_strict_json_when_asked():
    import json
    import math
    from pathlib import Path

    from explorer.store import jsonable

    x = {1: np.float32(0.5), "a": (np.int64(3), np.array([1.0, np.nan])), "p": Path("/x/y"), "b": np.bool_(True)}
    out = jsonable(x)
    assert out["1"] == 0.5 and type(out["1"]) is float and out["a"][0] == 3 and type(out["a"][0]) is int
    assert out["a"][1][0] == 1.0 and out["p"] == "/x/y" and out["b"] is True
    assert math.isnan(out["a"][1][1])  # kept unless finite=True (the workspace stores NaN)
    strict = jsonable(x, finite=True)
    assert strict["a"][1][1] is None and json.loads(json.dumps(strict, allow_nan=False)) == strict
    with pytest.raises(TypeError):
        jsonable({"f": object()}, strict=True)
    o = object()
    assert jsonable([o])[0] is o


def test_every_cache_has_its_own_group():
    from explorer import store
    from explorer.app.timeline import TIMELINE_GROUP

    assert len(set(store.GROUPS)) == len(store.GROUPS)
    assert TIMELINE_GROUP == store.TIMELINES != store.COMPARISONS


def test_a_write_that_fits_is_not_refused_for_space(tmp_path, monkeypatch):
    # the up-front free-space check estimates what a put adds: an 8 MB float32 array must pass
    # with room for it plus margins, and be refused with half of it free
    ws, _ = _ws_with_record(tmp_path)
    a = np.ones((2_000_000,), np.float32)
    old = ws.path.stat().st_size
    room = old + int(1.25 * a.nbytes) + (2 << 20) + store.RESERVE_BYTES
    monkeypatch.setattr(store, "_disk_free", lambda folder: room)
    ws.put("embeddings", "big", {"vectors": a}, {})
    assert ws.get("embeddings", "big").arrays["vectors"].shape == a.shape
    monkeypatch.setattr(store, "_disk_free", lambda folder: a.nbytes // 2)
    with pytest.raises(WorkspaceError, match="^Disk full"):
        ws.put("embeddings", "big2", {"vectors": a}, {})


def test_attributes_keep_nan_and_infinity(tmp_path):
    # metrics of a degenerate embedding are NaN (e.g. RankMe of all zeros): stored as they are
    ws = Workspace(tmp_path / "w.h5")
    ws.put("diagnostics", "d", {}, {"rankme": float("nan"), "ratio": float("inf"), "n": 3})
    a = Workspace(tmp_path / "w.h5").get("diagnostics", "d").attrs
    assert np.isnan(a["rankme"]) and a["ratio"] == float("inf") and a["n"] == 3


def test_stale_temporaries_of_dead_writers_are_removed_and_others_kept(tmp_path):
    # a killed writer leaves .<name>.<pid>-<hex>.tmp / .reserve files next to the workspace;
    # with no writer holding the workspace they go, and files not of this pattern stay
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "e", {"vectors": np.ones((3, 2), np.float32)}, {})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = [f".w.h5.{dead}-0123456789ab.tmp", f".w.h5.{dead}-0123456789ab.reserve", ".w.h5.89abcdef01.tmp"]
    keep = [".w.h5.notes.txt", ".other.h5.12-0123456789ab.tmp", "w.h5.1-0123456789ab.tmp"]
    for n in stale + keep:
        (tmp_path / n).write_bytes(b"x")
    assert sorted(store.clean_stale_temporaries(ws.path)) == sorted(stale)
    assert set(keep) | {"w.h5"} <= {p.name for p in tmp_path.iterdir()}
    assert not set(stale) & {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("failure, message", [
    (RuntimeError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')"),
     "Disk full while writing w.h5; the workspace is unchanged."),
    (RuntimeError("Can't write data (No space left on device)"),  # HDF5's text without the errno
     "Disk full while writing w.h5; the workspace is unchanged."),
    (OSError(errno.EIO, "Input/output error"),
     "Could not write w.h5 ([Errno 5] Input/output error); the workspace is unchanged."),
    (RuntimeError("x" * 160), f"Could not write w.h5 ({'x' * 160}); the workspace is unchanged."),
    (RuntimeError("y" * 161), f"Could not write w.h5 ({'y' * 157}...); the workspace is unchanged."),
])
def test_a_failed_write_says_what_failed_and_changes_nothing(tmp_path, monkeypatch, failure, message):
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)

    def fails(dset, start, block):
        raise failure

    monkeypatch.setattr(store, "_write_block", fails)
    with pytest.raises(WorkspaceError) as err:
        ws.put("embeddings", "new", {"vectors": np.ones((10, 10), np.float32)}, {})
    assert str(err.value) == message
    assert sha(ws.path) == before and leftovers(tmp_path) == []


def test_the_file_says_which_version_wrote_it(tmp_path):
    from explorer import __version__

    Workspace(tmp_path / "w.h5").put("knn", "a", {"indices": np.arange(4).reshape(2, 2)}, {})
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert f.attrs["written_by"] == str(__version__) and __version__


def test_a_writer_killed_mid_put_leaves_files_the_next_open_removes(tmp_path):
    # no monkeypatching in this process: a child process dies (os._exit) half way through a
    # put, leaving its temporary copy and its space reservation; opening the workspace again
    # removes them and the old records are intact
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)
    code = textwrap.dedent(f"""
        import os, numpy as np, explorer.store as store
        ws = store.Workspace({str(ws.path)!r})
        store._write_block = lambda dset, start, block: os._exit(3)
        ws.put("embeddings", "new", {{"vectors": np.ones((1000, 100), np.float32)}}, {{}})
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".w.h5.") and p.name != ".w.h5.lock")
    assert sorted(n.rsplit(".", 1)[1] for n in left) == ["reserve", "tmp"], left
    reserve = next(n for n in left if n.endswith(".reserve"))
    st = (tmp_path / reserve).stat()  # the reservation is really allocated, not a sparse file
    assert st.st_size == store.RESERVE_BYTES and st.st_blocks * 512 >= st.st_size
    ws2 = Workspace(ws.path)
    assert not [p.name for p in tmp_path.iterdir() if p.name in left]
    assert sha(ws.path) == before and not ws2.has("embeddings", "new")
    np.testing.assert_array_equal(ws2.get("embeddings", "old").arrays["vectors"], old)


def test_a_write_refused_for_permissions_keeps_the_record_in_memory(tmp_path, monkeypatch):
    # HDF5 reports a permission failure as text with "errno = 13": the workspace turns
    # read-only for this session, the record stays readable (whole and lazily), nothing is lost
    ws, old = _ws_with_record(tmp_path)
    before = sha(ws.path)

    def refused(dset, start, block):
        raise RuntimeError("Unable to synchronously create file (unable to lock file, errno = 13)")

    monkeypatch.setattr(store, "_write_block", refused)
    v = np.arange(12, dtype=np.float32).reshape(4, 3)
    with pytest.warns(UserWarning, match="read-only"):
        ws.put("embeddings", "new", {"vectors": v}, {"model": "m2"})
    assert ws.read_only and sha(ws.path) == before
    np.testing.assert_array_equal(ws.get("embeddings", "new").arrays["vectors"], v)
    lazy = ws.lazy("embeddings", "new", "vectors")
    np.testing.assert_array_equal(np.asarray(lazy), v)
    np.testing.assert_array_equal(lazy.read(1, 3), v[1:3])


def test_a_lazy_array_reads_rows_and_converts_whole(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    v = np.random.default_rng(1).standard_normal((50, 7)).astype(np.float32)
    ws.put("embeddings", "e", {"vectors": v}, {})
    lazy = Workspace(tmp_path / "w.h5").lazy("embeddings", "e", "vectors")
    assert (len(lazy), lazy.shape, lazy.dtype) == (50, (50, 7), np.float32)
    np.testing.assert_array_equal(lazy.read(10, 20), v[10:20])
    np.testing.assert_array_equal(lazy.read(45, 99), v[45:])  # clipped to the rows there are
    np.testing.assert_array_equal(np.asarray(lazy), v)


def test_the_free_space_check_keeps_a_sixteenth_of_the_new_file_in_hand(tmp_path, monkeypatch):
    # the new file is written beside the old one: it needs the old size plus what the put adds,
    # plus 1 MiB and 1/16 of that sum for HDF5's own overhead, plus the space reservation; one
    # byte less free space than that is refused before anything is written
    ws, _ = _ws_with_record(tmp_path)
    a = np.ones((4_000_000,), np.float32)  # 16 MB: the 1/16 margin (1 MB) is what is tested
    old = ws.path.stat().st_size
    extra = a.nbytes + 4096  # the array and its header
    need = old + extra + (1 << 20) + (old + extra) // 16 + store.RESERVE_BYTES
    monkeypatch.setattr(store, "_disk_free", lambda folder: need - 1)
    with pytest.raises(WorkspaceError, match="^Disk full"):
        ws.put("embeddings", "big", {"vectors": a}, {})
    monkeypatch.setattr(store, "_disk_free", lambda folder: need)
    ws.put("embeddings", "big", {"vectors": a}, {})
    assert ws.has("embeddings", "big")
