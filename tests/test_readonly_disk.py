"""Read-only workspaces, full disks, output paths and stale temporary files (issue 15).

Read-only places are made for real: a read-only bind mount when the tests run as root (root
writes through permission bits), permission bits otherwise. A full disk is a small tmpfs (root)
or a file-size limit (RLIMIT_FSIZE, anyone on Linux) in a child process, so that a crash
(SIGSEGV) or HDF5's "Exception ignored" text would be seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.errors import ExplorerWarning, InputError, WorkspaceError
from explorer.store import Workspace, atomic_file, save_npy

pytestmark = pytest.mark.usefixtures("one_thread")
LINUX = sys.platform.startswith("linux")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
REPO = Path(__file__).resolve().parents[1]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` (and what is in it) read-only for this process, for real."""
    if ROOT:
        ok = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
        if not ok or subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                    capture_output=True).returncode != 0:
            if ok:
                subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip("running as root without permission to mount a read-only folder")
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], capture_output=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, m in modes.items():
            p.chmod(m)


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder`` (root only)."""
    if not (ROOT and LINUX):
        pytest.skip("a small tmpfs needs root on Linux")
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    import shutil

    free = shutil.disk_usage(folder).free - leave
    with open(folder / "filler", "wb") as f:
        while free > 0:
            n = min(free, 1 << 20)
            try:
                f.write(b"\0" * n)
                f.flush()
            except OSError:
                break
            free -= n


def child(code: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONFAULTHANDLER="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO))


def mlp_run(folder: Path, n_ckpt: int = 2) -> Path:
    import torch

    from explorer.encoders.archs import mlp

    folder.mkdir()
    kw = {"in_dim": 8, "hidden": 16, "out_dim": 6, "layers": 1}
    for i in range(1, n_ckpt + 1):
        torch.manual_seed(i)
        torch.save(mlp(**kw).state_dict(), folder / f"epoch_{i:02d}.pt")
        (folder / f"epoch_{i:02d}.pt.json").write_text(json.dumps(
            {"arch": "mlp", "arch_kwargs": kw, "preprocess": {"kind": "vector"}, "epoch": i}))
    return folder


# --------------------------------------------------------------------------- read-only workspaces

@pytest.fixture
def ro_world(tmp_path):
    """A workspace with two embeddings (and a timeline run) in a folder that becomes read-only,
    and a writable copy of the same for the expected results."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 8)).astype(np.float32)
    labels = np.arange(40) % 4
    np.save(tmp_path / "Zv.npy", Z)
    B = Z @ rng.normal(size=(8, 5)).astype(np.float32)
    run = mlp_run(tmp_path / "run")
    worlds = {}
    for name in ("rw", "ro"):
        d = tmp_path / name
        d.mkdir()
        ws = Workspace(d / "w.h5")
        ws.put("embeddings", "ka", {"vectors": Z, "labels": labels}, {"model": "a", "layer": None})
        ws.put("embeddings", "kb", {"vectors": B},
               {"model": "b", "layer": None})
        worlds[name] = d / "w.h5"
    # the timeline's probe embeddings are stored too, so the read-only run must still embed/compute
    return {"dir": tmp_path, "run": run, "data": tmp_path / "Zv.npy", **worlds}


COMMANDS = {
    "project": lambda ws, w: ["project", "--workspace", ws, "--model", "a", "--method", "pca", "--json"],
    "diagnose": lambda ws, w: ["diagnose", "--workspace", ws, "--model", "a", "--json"],
    "neighbors": lambda ws, w: ["neighbors", "--workspace", ws, "--model", "a", "-k", "3", "--method", "exact",
                                "--json"],
    "compare": lambda ws, w: ["compare", "--workspace", ws, "--models", "a", "b", "-k", "5", "--mutual-k", "5",
                                "--json"],
    "timeline": lambda ws, w: ["timeline", w["run"], "--data", w["data"], "--device", "cpu", "--probe-size", "30",
                               "--workspace", ws, "--json"],
}
VOLATILE = ("seconds", "timings", "cached", "cache_hit", "layout_key", "embedding_key", "out", "workspace")


def _stable(x):
    if isinstance(x, dict):
        return {k: _stable(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


def _same(got, want, where="") -> None:
    """Equal structures; floats equal to 1e-12 (on a GPU two runs of the same float64 sums
    can differ in the last bit)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15, nan_ok=True), where
    else:
        assert got == want, where


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_analysis_works_on_a_read_only_workspace(ro_world, cmd):
    w = ro_world
    rc, want, err = run_cli(COMMANDS[cmd](w["rw"], w) + ["--quiet"])
    assert rc == 0, err
    before = sha(w["ro"])
    names = sorted(os.listdir(w["ro"].parent))
    with read_only(w["ro"].parent):
        rc, got, err = run_cli(COMMANDS[cmd](w["ro"], w) + ["--quiet"])
        assert rc == 0, err
        line = one_line(err)
        assert "read-only" in line and "not cached" in line, line
        assert line.startswith("embedding-explorer: warning:")
    assert json.loads(got) is not None
    _same(_stable(json.loads(got)), _stable(json.loads(want)))
    assert sha(w["ro"]) == before
    assert sorted(os.listdir(w["ro"].parent)) == names


def test_read_only_workspace_keeps_results_in_memory_and_says_so_once(ro_world):
    w = ro_world
    with read_only(w["ro"].parent):
        ws = Workspace(w["ro"])
        assert ws.read_only
        with pytest.warns(ExplorerWarning, match="read-only") as rec:
            ws.put("layouts", "x", {"coords": np.ones((3, 2), np.float32)}, {"n": 3})
            ws.put("layouts", "y", {"coords": np.zeros((3, 2), np.float32)}, {"n": 4})
        assert len([r for r in rec if issubclass(r.category, ExplorerWarning)]) == 1
        assert ws.has("layouts", "x") and ws.get("layouts", "y").attrs == {"n": 4}
        np.testing.assert_array_equal(ws.get("layouts", "x").arrays["coords"], np.ones((3, 2)))
        assert [k for k, _ in ws.list("layouts")] == ["x", "y"]
        assert [k for k, _ in ws.list("embeddings")] == ["ka", "kb"]
        assert not Workspace(w["ro"]).has("layouts", "x")  # nothing reached the file
        with pytest.raises(WorkspaceError, match="read-only"):
            ws.delete("embeddings", "ka")


def test_embed_into_a_read_only_workspace_is_refused(ro_world):
    w = ro_world
    with read_only(w["ro"].parent):
        rc, _, err = run_cli(["embed", "--data", w["data"], "--workspace", w["ro"], "--quiet"])
    assert rc == 2
    assert "read-only" in one_line(err)


def test_new_workspace_in_a_read_only_folder_is_one_sentence(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    with read_only(d):
        with pytest.raises(WorkspaceError, match="read-only"):
            Workspace(d / "new.h5")


# --------------------------------------------------------------------------- output paths

def _out_commands(tmp_path, out):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "Z.npy", rng.normal(size=(30, 8)).astype(np.float32))
    np.save(tmp_path / "Z2.npy", rng.normal(size=(30, 4)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(30) % 3)
    run = tmp_path / "run" if (tmp_path / "run").exists() else mlp_run(tmp_path / "run")
    return {
        "project": ["project", "--vectors", tmp_path / "Z.npy", "--method", "pca", "--out", out],
        "neighbors": ["neighbors", "--vectors", tmp_path / "Z.npy", "-k", "3", "--out", out],
        "compare": ["compare", "--vectors", tmp_path / "Z.npy", tmp_path / "Z2.npy", "-k", "3", "--mutual-k", "3",
                    "--overlap-out", out],
        "timeline": ["timeline", run, "--data", tmp_path / "Z.npy", "--device", "cpu", "--probe-size", "20",
                     "--layouts-out", out],
        "finetune": ["finetune", "--data", tmp_path / "Z.npy", "--labels", tmp_path / "y.npy", "--encoder",
                     run / "epoch_01.pt", "--objective", "ce", "--epochs", "1", "--out", out],
    }


@pytest.mark.parametrize("cmd", ["project", "neighbors", "compare", "timeline", "finetune"])
@pytest.mark.parametrize("where", ["folder", "read-only folder", "under a file"])
def test_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, cmd, where):
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "afile").write_text("x")
    suffix = ".pt" if cmd == "finetune" else ".npy"
    out = {"folder": tmp_path / f"dir{suffix}", "read-only folder": ro / f"out{suffix}",
           "under a file": tmp_path / "afile" / f"out{suffix}"}[where]
    if where == "folder":
        out.mkdir()
    argv = _out_commands(tmp_path, out)[cmd] + ["--quiet"]
    with read_only(ro):
        t0 = time.perf_counter()
        rc, _, err = run_cli(argv)
        took = time.perf_counter() - t0
    assert rc == 2, err
    line = one_line(err)
    assert str(out.name) in line or str(out.parent) in line, line
    assert os.listdir(ro) == []
    assert took < 30  # no training, embedding or map before the refusal (a loose bound)


@pytest.mark.parametrize("cmd", ["project", "neighbors", "compare", "timeline"])
def test_outputs_replace_the_previous_file_whole(tmp_path, cmd):
    out = tmp_path / "result.npy"
    np.save(out, np.full(3, 7.0))
    rc, _, err = run_cli(_out_commands(tmp_path, out)[cmd] + ["--quiet"])
    assert rc == 0, err
    assert np.load(out).shape != (3,)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_atomic_file_keeps_the_previous_file_when_the_write_fails(tmp_path):
    out = tmp_path / "x.npy"
    save_npy(out, np.arange(5))
    with pytest.raises(ZeroDivisionError):
        with atomic_file(out) as tmp:
            tmp.write_bytes(b"half")
            1 / 0
    np.testing.assert_array_equal(np.load(out), np.arange(5))
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]
    with pytest.raises(InputError, match="is a folder"):
        save_npy(tmp_path, np.arange(3))


# --------------------------------------------------------------------------- full disks

DISK_FULL_CHILD = """
    import sys, numpy as np
    from explorer import store
    from explorer.cli import main
    {patch}
    sys.exit(main({argv!r}))
"""


def _assert_disk_full(res, *paths_unchanged):
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    line = one_line(res.stderr)
    assert "Disk full" in line, line


@pytest.mark.parametrize("checked_first", [True, False], ids=["free-space-check", "disk-fills-during-write"])
def test_full_disk_during_a_workspace_write_is_one_sentence(tmp_path, checked_first):
    """The put either is refused by the free-space check or (another program filled the disk
    after it: the check sees plenty of room) meets ENOSPC while writing; both end in one
    sentence, exit 2, no crash, the workspace and folder as before."""
    disk = tmp_path / "disk"
    with small_disk(disk, "10m"):
        ws = Workspace(disk / "w.h5")
        ws.put("embeddings", "old", {"vectors": np.ones((2000, 128), np.float32)}, {"model": "m"})
        np.save(tmp_path / "V.npy", np.random.default_rng(0).normal(size=(12000, 128)).astype(np.float32))
        before = sha(ws.path)
        names = sorted(os.listdir(disk))
        patch = "" if checked_first else "store._disk_free = lambda folder: 1 << 40"
        res = child(DISK_FULL_CHILD.format(patch=patch, argv=["embed", "--data", str(tmp_path / "V.npy"),
                                                              "--workspace", str(ws.path), "--quiet"]))
        _assert_disk_full(res)
        assert sha(ws.path) == before and sorted(os.listdir(disk)) == names
        np.testing.assert_array_equal(Workspace(ws.path).get("embeddings", "old").arrays["vectors"],
                                      np.ones((2000, 128), np.float32))


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE behaviour checked on Linux")
def test_file_size_limit_during_a_workspace_write_is_one_sentence(tmp_path):
    """Anyone can run this one: a per-file size limit in a child process."""
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "old", {"vectors": np.ones((400, 100), np.float32)}, {"model": "m"})
    np.save(tmp_path / "V.npy", np.ones((20000, 100), np.float32))
    before = sha(ws.path)
    patch = (f"import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"store._disk_free = lambda folder: 1 << 40; "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({ws.path.stat().st_size + 3_000_000}, "
             f"resource.RLIM_INFINITY))")
    res = child(DISK_FULL_CHILD.format(patch=patch, argv=["embed", "--data", str(tmp_path / "V.npy"),
                                                          "--workspace", str(ws.path), "--quiet"]))
    _assert_disk_full(res)
    assert sha(ws.path) == before
    assert [p for p in os.listdir(tmp_path) if p.endswith((".tmp", ".reserve"))] == []


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE behaviour checked on Linux")
def test_full_disk_writing_an_output_keeps_the_previous_file(tmp_path):
    """A 6 MB map under a 4 MB file-size limit (the inputs are only read)."""
    np.save(tmp_path / "Z.npy", np.random.default_rng(0).normal(size=(500_000, 4)).astype(np.float32))
    out = tmp_path / "map.npy"
    np.save(out, np.arange(4))
    before = sha(out)
    patch = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, resource.RLIM_INFINITY))")
    res = child(DISK_FULL_CHILD.format(patch=patch, argv=["project", "--vectors", str(tmp_path / "Z.npy"),
                                                          "--method", "pca", "--dims", "3", "--out", str(out),
                                                          "--quiet"]))
    _assert_disk_full(res)
    assert sha(out) == before
    assert sorted(os.listdir(tmp_path)) == ["Z.npy", "map.npy"]


def test_timeline_layouts_out_on_a_full_disk_keeps_the_previous_file(tmp_path):
    run = mlp_run(tmp_path / "run")
    np.save(tmp_path / "Zv.npy", np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    disk = tmp_path / "disk"
    with small_disk(disk, "1m"):
        out = disk / "layouts.npy"
        np.save(out, np.arange(10))
        before = sha(out)
        fill(disk, leave=1024)
        rc, _, err = run_cli(["timeline", run, "--data", tmp_path / "Zv.npy", "--device", "cpu",
                              "--probe-size", "300", "--layouts-out", out, "--quiet"])
        assert rc == 2, err
        assert "Disk full" in one_line(err)
        assert sha(out) == before
        assert sorted(os.listdir(disk)) == ["filler", "layouts.npy"]


# --------------------------------------------------------------------------- stale temporaries

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_when_the_workspace_opens(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "a", {"vectors": np.ones((5, 2), np.float32)}, {})
    dead = _dead_pid()
    stale = [f".w.h5.{dead}-0123456789ab.tmp", ".w.h5.0123456789ab.tmp", f".w.h5.{dead}-00112233aabb.reserve"]
    for n in stale:
        (tmp_path / n).write_bytes(b"x" * 1000)
    (tmp_path / ".other.h5.0123456789ab.tmp").write_bytes(b"not ours")
    Workspace(tmp_path / "w.h5")
    assert sorted(os.listdir(tmp_path)) == [".other.h5.0123456789ab.tmp", ".w.h5.lock", "w.h5"]


@pytest.mark.skipif(not LINUX, reason="flock-based")
def test_temporaries_of_a_live_writer_are_kept(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(tmp_path / '.w.h5.lock')!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        open({str(tmp_path)!r} + f"/.w.h5.{{os.getpid()}}-0123456789ab.tmp", "wb").write(b"in progress")
        print("ready", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        Workspace(ws.path)
        assert f".w.h5.{holder.pid}-0123456789ab.tmp" in os.listdir(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    Workspace(ws.path)  # the writer is gone: its file is stale now
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.skipif(not LINUX, reason="SIGKILL")
def test_kill_during_a_write_leaves_nothing_after_the_next_open(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "old", {"vectors": np.ones((10, 4), np.float32)}, {"model": "m"})
    before = sha(ws.path)
    def code(rows: int) -> str:
        return ("import numpy as np\nfrom explorer.store import Workspace\n"
                f"Workspace({str(ws.path)!r}).put('embeddings', 'big', "
                f"{{'vectors': np.ones(({rows}, 64), np.float32)}}, {{}})\n")

    for size in (1, 4, 16):
        p = subprocess.Popen([sys.executable, "-c", code(size * 160_000)],
                             env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=str(REPO))
        seen = False
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            if any(n.endswith(".tmp") for n in os.listdir(tmp_path)):
                seen = True
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        p.wait()
        if seen:
            break
        ws.delete("embeddings", "big") if Workspace(ws.path).has("embeddings", "big") else None
        before = sha(ws.path)
    assert seen, "the write finished before it could be killed"
    assert sha(ws.path) == before  # the kill left the old file
    assert any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    Workspace(ws.path)
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".tmp", ".reserve"))]
    assert Workspace(ws.path).list("embeddings")[0][0] == "old"


def test_exports_are_atomic_and_refuse_unwritable_places(tmp_path):
    from explorer.data import open_dataset
    from explorer.app.export import export_selection

    V = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    np.save(tmp_path / "V.npy", V)
    ds = open_dataset(tmp_path / "V.npy")
    out = tmp_path / "sel.npy"
    export_selection(out, ds, [1, 3], vectors=V)
    np.testing.assert_array_equal(np.load(out), V[[1, 3]])
    export_selection(tmp_path / "sel.csv", ds, [2], vectors=V)
    assert (tmp_path / "sel.csv").read_text().splitlines()[0].startswith("index,id")
    (tmp_path / "adir.npy").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        export_selection(tmp_path / "adir.npy", ds, [1], vectors=V)
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        with pytest.raises(InputError, match="Cannot write in"):
            export_selection(ro / "x.npy", ds, [1], vectors=V)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
