"""Sharded embedding (issue 20): ``embed --launcher torchrun`` under ``torchrun --nproc-per-node 2``
(gloo, CPU), ``--launcher ray`` on a local Ray instance, and resumable single-process shards
give the same workspace record as one plain ``embed``; a rank killed mid-run loses only its
shard and the restart completes with the same result; float16 storage is flagged and read back
as float32; stale or broken shards are never reused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_data" / "digits"
CKPT = ROOT / "sample_data" / "checkpoints" / "healthy.pt"
PER_CLASS = 8  # 80 images: seconds per run
BATCH = 8
# what a record says about how (not from what) it was computed: differs run to run
RUN_ATTRS = {"created", "seconds", "device", "launcher", "workers", "shards", "shard_rows", "stored_dtype",
             "stored_as", "batch_size"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """A small copy of the sample digits: PER_CLASS images of each class."""
    root = tmp_path_factory.mktemp("data") / "digits"
    for c in sorted(p for p in DIGITS.iterdir() if p.is_dir()):
        (root / c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:PER_CLASS]:
            shutil.copy2(f, root / c.name / f.name)
    return root


def _read_record(ws: Path) -> tuple[str, dict, dict]:
    """(key, arrays, attrs) of the one embeddings record, read with h5py directly."""
    with h5py.File(ws, "r") as f:
        g = f["embeddings"]
        (key,) = list(g.keys())
        arrays = {n: g[key][n][()] for n in g[key].keys()}
        attrs = json.loads(g[key].attrs["attrs"])
    return key, arrays, attrs


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    """One plain single-process embed of the small digits."""
    ws = tmp_path_factory.mktemp("ref") / "single.h5"
    rc = main(["embed", "--data", str(digits), "--encoder", str(CKPT), "--workspace", str(ws),
               "--batch-size", str(BATCH), "--workers", "0", "--quiet", "--json"])
    assert rc == 0
    return _read_record(ws)


def _same_record(got, ref, exact: bool = True) -> None:
    key, arrays, attrs = got
    rkey, rarrays, rattrs = ref
    assert key == rkey
    assert set(arrays) == set(rarrays)
    assert arrays["vectors"].dtype == np.float32
    if exact:
        assert np.array_equal(arrays["vectors"], rarrays["vectors"])  # bit-identical
    for name in set(rattrs) - RUN_ATTRS:
        assert attrs[name] == rattrs[name], name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _torchrun(digits, ws: Path, *more, env=None, wait=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "explorer.cli", "embed", "--data", str(digits),
           "--encoder", str(CKPT), "--workspace", str(ws), "--batch-size", str(BATCH), "--workers", "0",
           "--launcher", "torchrun", "--quiet", "--json", *more]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=240)


def _summary(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, stdout  # rank 0 alone reports
    return json.loads(lines[0])


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_single_process_record(digits, reference, tmp_path):
    ws = tmp_path / "w.h5"
    r = _torchrun(digits, ws, "--shard-rows", "16")
    assert r.returncode == 0, r.stderr[-2000:]
    s = _summary(r.stdout)
    assert s["launcher"] == "torchrun" and s["workers"] == 2
    assert s["shards_written"] == 5 and s["shards_reused"] == 0  # 80 rows in blocks of 16
    _same_record(_read_record(ws), reference)
    assert not (tmp_path / ".w.h5.shards").exists()  # merged, then removed


def _pids_with(marker: str, rank: str) -> list[int]:
    """Processes of this test run (environment marker) with RANK=rank."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"EXPLORER_TEST_RUN={marker}".encode() in env and f"RANK={rank}".encode() in env:
            out.append(int(d.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank by /proc")
def test_a_killed_rank_loses_only_its_shard_and_the_restart_completes(digits, reference, tmp_path):
    ws = tmp_path / "w.h5"
    folder = tmp_path / ".w.h5.shards" / reference[0]
    marker = uuid.uuid4().hex
    # blocks of 8 rows: 10 blocks, rank 1 takes the odd ones; each rank waits 2 s after a shard
    p = _torchrun(digits, ws, "--shard-rows", "8", wait=False,
                  env=_env(EXPLORER_TEST_SHARD_PAUSE="2", EXPLORER_TEST_RUN=marker))
    try:
        deadline = time.monotonic() + 120
        while not (folder / "shard-000001.npz").exists():
            assert p.poll() is None, p.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "rank 1 wrote no shard"
            time.sleep(0.05)
        pids = _pids_with(marker, "1")
        pids = [q for q in pids if q != p.pid]
        assert pids, "rank 1 not found"
        for q in pids:
            os.kill(q, signal.SIGKILL)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode != 0  # the launch failed
    if ws.exists():
        with h5py.File(ws, "r") as f:
            assert "embeddings" not in f  # nothing merged
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in folder.glob("shard-*.npz")}
    assert "shard-000001.npz" in before and len(before) < 10  # rank 1's later blocks are not there
    r = _torchrun(digits, ws, "--shard-rows", "8", "--keep-shards")
    assert r.returncode == 0, r.stderr[-2000:]
    s = _summary(r.stdout)
    assert s["shards_reused"] == len(before) and s["shards_written"] == 10 - len(before)
    after = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in folder.glob("shard-*.npz")}
    assert {n: after[n] for n in before} == before  # the shards on disk were reused untouched
    assert not list(folder.glob("*.tmp"))
    _same_record(_read_record(ws), reference)


@pytest.mark.slow
def test_ray_actor_pool_gives_the_single_process_record(digits, reference, tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ws = tmp_path / "w.h5"
    cmd = [sys.executable, "-m", "explorer.cli", "embed", "--data", str(digits), "--encoder", str(CKPT),
           "--workspace", str(ws), "--batch-size", str(BATCH), "--workers", "0", "--launcher", "ray",
           "--address", "local", "--ray-actors", "2", "--shard-rows", "16", "--quiet", "--json"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    s = _summary(r.stdout)
    assert s["launcher"] == "ray" and s["shards_written"] == 5
    _same_record(_read_record(ws), reference)


def test_local_shards_resume_and_give_the_same_record(digits, reference, tmp_path, capsys):
    ws = tmp_path / "w.h5"
    args = ["embed", "--data", str(digits), "--encoder", str(CKPT), "--workspace", str(ws),
            "--batch-size", str(BATCH), "--workers", "0", "--shard-rows", "24", "--quiet", "--json", "--keep-shards"]
    assert main(args) == 0
    _same_record(_read_record(ws), reference)
    folder = tmp_path / ".w.h5.shards" / reference[0]
    shards = sorted(folder.glob("shard-*.npz"))
    assert len(shards) == 4  # 24 rows are 3 batches of 8: 80 rows in 4 blocks
    # a failure after two shards: the record and two shards gone, a half-written temp left
    ws.unlink()
    for f in shards[2:]:
        f.unlink()
    (folder / ".shard-000002.99999-deadbeef.tmp").write_bytes(b"half")
    keep = {f.name: f.stat().st_ino for f in shards[:2]}
    capsys.readouterr()
    assert main(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["shards_reused"] == 2 and s["shards_written"] == 2
    assert {f.name: f.stat().st_ino for f in sorted(folder.glob("shard-*.npz"))[:2]} == keep
    assert not list(folder.glob("*.tmp"))
    _same_record(_read_record(ws), reference)


def test_stale_and_broken_shards_are_never_reused(digits, reference, tmp_path, capsys):
    ws = tmp_path / "w.h5"
    base = ["embed", "--data", str(digits), "--encoder", str(CKPT), "--workspace", str(ws), "--workers", "0",
            "--quiet", "--json", "--keep-shards"]
    assert main(base + ["--batch-size", "16", "--shard-rows", "16"]) == 0
    folder = tmp_path / ".w.h5.shards" / reference[0]
    ws.unlink()
    # another batch size: the manifest differs, every shard is made again
    capsys.readouterr()
    assert main(base + ["--batch-size", str(BATCH), "--shard-rows", "16"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["shards_stale"] == 5 and s["shards_reused"] == 0 and s["shards_written"] == 5
    _same_record(_read_record(ws), reference)
    # a shard file that is not whole (truncated) is embedded again, not read
    ws.unlink()
    f = folder / "shard-000003.npz"
    f.write_bytes(f.read_bytes()[:100])
    assert main(base + ["--batch-size", str(BATCH), "--shard-rows", "16"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["shards_reused"] == 4 and s["shards_written"] == 1
    _same_record(_read_record(ws), reference)


def test_float16_storage_is_flagged_and_reads_back_as_float32(tmp_path, capsys):
    from explorer.store import Workspace

    rng = np.random.default_rng(0)
    v = rng.normal(size=(1000, 48)).astype(np.float32)
    np.save(tmp_path / "v.npy", v)
    ws = tmp_path / "w.h5"
    assert main(["embed", "--data", str(tmp_path / "v.npy"), "--workspace", str(ws), "--store-dtype", "float16",
                 "--batch-size", "100", "--quiet", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    with h5py.File(ws, "r") as f:
        ds = f["embeddings"][key]["vectors"]
        assert ds.dtype == np.float16 and ds.chunks is not None  # on disk: half, chunked
        attrs = json.loads(f["embeddings"][key].attrs["attrs"])
    assert attrs["stored_dtype"] == "float16" and attrs["stored_as"] == {"vectors": "float16"}
    want = v.astype(np.float16).astype(np.float32)
    w = Workspace(ws)
    got = w.get("embeddings", key).arrays["vectors"]
    assert got.dtype == np.float32 and np.array_equal(got, want)
    lazy = w.lazy("embeddings", key, "vectors")
    assert lazy.shape == (1000, 48) and lazy.dtype == np.float32
    assert np.array_equal(lazy[10:437], want[10:437])
    rows = np.array([999, 3, 500, 4, 5, 0])
    assert np.array_equal(lazy[rows], want[rows])
    assert np.array_equal(lazy[7], want[7]) and np.array_equal(np.asarray(lazy), want)
    # a cache hit of a float16 record gives float32 vectors
    assert main(["embed", "--data", str(tmp_path / "v.npy"), "--workspace", str(ws), "--quiet", "--json",
                 "--out", str(tmp_path / "o.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["cache_hit"] is True
    assert np.array_equal(np.load(tmp_path / "o.npy"), want)


def test_torchrun_launcher_outside_torchrun_is_one_line(digits, tmp_path, capsys, monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    rc = main(["embed", "--data", str(digits), "--encoder", str(CKPT), "--workspace", str(tmp_path / "w.h5"),
               "--launcher", "torchrun", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "runs under torchrun" in err and len(err.strip().splitlines()) == 1


def test_shards_leave_unreadable_items_out_as_one_process_does(digits, tmp_path, capsys):
    data = tmp_path / "digits"
    shutil.copytree(digits, data)
    (data / "3" / "garbage.png").write_bytes(b"not a png at all")
    cut = sorted((data / "7").iterdir())[0]
    cut.write_bytes(cut.read_bytes()[:40])  # truncated
    base = ["embed", "--data", str(data), "--encoder", str(CKPT), "--batch-size", str(BATCH), "--workers", "0",
            "--quiet", "--json"]
    assert main(base + ["--workspace", str(tmp_path / "one.h5")]) == 0
    assert main(base + ["--workspace", str(tmp_path / "sharded.h5"), "--shard-rows", "8"]) == 0
    capsys.readouterr()
    ref, got = _read_record(tmp_path / "one.h5"), _read_record(tmp_path / "sharded.h5")
    assert ref[2]["n_skipped"] == 2 and len(ref[1]["vectors"]) == 79  # 81 files, 2 unreadable
    _same_record(got, ref)
    assert np.array_equal(got[1]["rows"], ref[1]["rows"]) and np.array_equal(got[1]["skipped"], ref[1]["skipped"])
    assert got[2]["skipped"] == ref[2]["skipped"]
