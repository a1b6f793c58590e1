"""Property-based tests of the command line (issue 15): every subcommand, driven in-process
through ``explorer.cli.main`` with generated bad arguments and files, ends with exit code 0
or 2, never a traceback, and at most one line on stderr; generated good arrays give the same
result through the CLI as through the library (and as an independent float64 reference).

Kept to about half a minute on two cores: small arrays, few examples per property, PCA maps
(UMAP's numba compilation alone would take longer than the whole file).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from explorer.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(FAST, max_examples=10)

N, D = 60, 6


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_clean(rc: int, err: str, argv=()) -> None:
    """Exit 0 or 2, no traceback, at most one line of message, and that line ours."""
    where = f"argv={list(map(str, argv))!r} stderr={err!r}"
    assert rc in (0, 2), where
    assert "Traceback" not in err and "Exception ignored" not in err, where
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) <= 1, where
    if rc == 2:
        assert lines and lines[0].startswith("embedding-explorer") and "error:" in lines[0], where
    for ln in lines:
        assert ln.startswith("embedding-explorer"), where


# --------------------------------------------------------------------------- a small world

def _mlp_checkpoint(path: Path, seed: int, in_dim: int = 8) -> Path:
    import torch

    from explorer.encoders.archs import mlp

    torch.manual_seed(seed)
    kw = {"in_dim": in_dim, "hidden": 16, "out_dim": D, "layers": 1}
    torch.save(mlp(**kw).state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps(
        {"arch": "mlp", "arch_kwargs": kw, "preprocess": {"kind": "vector"}, "epoch": seed}))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from explorer.store import Workspace

    d = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    w = {"dir": d}
    w["Z"] = d / "Z.npy"
    np.save(w["Z"], rng.normal(size=(N, D)).astype(np.float32))
    w["Z2"] = d / "Z2.npy"
    np.save(w["Z2"], rng.normal(size=(N, 4)).astype(np.float32))
    w["y"] = d / "y.npy"
    np.save(w["y"], np.arange(N) % 3)
    w["Zv"] = d / "Zv.npy"
    np.save(w["Zv"], rng.normal(size=(N, 8)).astype(np.float32))
    runs = d / "run"
    runs.mkdir()
    w["ckpt"] = _mlp_checkpoint(runs / "epoch_01.pt", 1)
    _mlp_checkpoint(runs / "epoch_02.pt", 2)
    w["run"] = runs
    ws = Workspace(d / "w.h5")
    ws.put("embeddings", "e1", {"vectors": np.load(w["Z"]), "labels": np.arange(N) % 3},
           {"model": "a", "layer": None, "dataset": "Z"})
    ws.put("embeddings", "e2", {"vectors": np.load(w["Z2"])}, {"model": "b", "layer": None, "dataset": "Z"})
    w["ws"] = ws.path
    w["folder"] = d / "a_folder"
    w["folder"].mkdir()
    (d / "text.npy").write_text("not an array")
    w["text"] = d / "text.npy"
    open(d / "empty.npy", "wb").close()
    w["empty"] = d / "empty.npy"
    w["missing"] = d / "missing.npy"
    w["file"] = d / "plain.txt"
    w["file"].write_text("x")
    return w


# --------------------------------------------------------------------------- strategies

BAD_NUMBERS = ["-1", "0", "1", "2", "-2", "1e12", "1e3", "nan", "inf", "-inf", "abc", "", "1.5", "-0.5",
               "99999999999999999999", "0x10", "3", "7"]
numbers = st.one_of(st.sampled_from(BAD_NUMBERS), st.integers(-10**4, 10**4).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
small_numbers = st.one_of(st.sampled_from(BAD_NUMBERS[:8] + ["abc", "nan", "1.5", "2", "3"]),
                          st.integers(-5, 5).map(str))


def input_file(w):
    return st.sampled_from([w["Z"], w["Z2"], w["y"], w["text"], w["empty"], w["missing"], w["folder"], w["file"],
                            w["ws"]])


def output_path(w):
    d = w["dir"]
    return st.sampled_from([w["folder"], d / "out.npy", d / "new" / "deeper" / "out.npy", w["file"] / "out.npy",
                            "/proc/out.npy", d / "out.pt", d / "a_folder" / "x.pt", d / "out.txt"])


def options(pairs):
    """A list of (flag, value-strategy) -> a strategy of argv fragments (each option at most once)."""
    return st.lists(st.sampled_from(range(len(pairs))), unique=True, max_size=4).flatmap(
        lambda idx: st.tuples(*[st.tuples(st.just(pairs[i][0]), pairs[i][1]) for i in idx]) if idx
        else st.just(())).map(lambda items: [x for kv in items for x in kv])


# --------------------------------------------------------------------------- bad arguments

@FAST
@given(data=st.data())
def test_diagnose_bad_arguments(world, data):
    w = world
    src = data.draw(st.sampled_from([["--vectors", w["Z"]], ["--workspace", w["ws"]], ["--vectors", w["empty"]],
                                     ["--vectors", w["y"]], []]))
    opts = data.draw(options([("--max-rows", numbers), ("--pair-points", numbers), ("--labels", input_file(w)),
                              ("--model", st.sampled_from(["a", "zz"])), ("--device", st.sampled_from(["cpu", "tpu"]))]))
    argv = ["diagnose", *src, *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FAST
@given(data=st.data())
def test_compare_bad_arguments(world, data):
    w = world
    src = data.draw(st.sampled_from([["--vectors", w["Z"], w["Z2"]], ["--vectors", w["Z"]],
                                     ["--workspace", w["ws"], "--models", "a", "b"],
                                     ["--workspace", w["ws"], "--models", "a"], ["--vectors", w["Z"], w["y"]]]))
    opts = data.draw(options([("-k", numbers), ("--mutual-k", numbers), ("--knn-points", numbers),
                              ("--overlap-out", output_path(w))]))
    argv = ["compare", *src, *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FAST
@given(data=st.data())
def test_project_bad_arguments(world, data):
    w = world
    src = data.draw(st.sampled_from([["--vectors", w["Z"]], ["--workspace", w["ws"], "--model", "a"],
                                     ["--workspace", w["ws"]], ["--vectors", w["text"]]]))
    opts = data.draw(options([("--seed", numbers), ("--n-epochs", numbers), ("--n-neighbors", numbers),
                              ("--min-dist", numbers), ("--dims", small_numbers), ("--out", output_path(w))]))
    argv = ["project", *src, "--method", "pca", *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FAST
@given(data=st.data())
def test_neighbors_bad_arguments(world, data):
    w = world
    src = data.draw(st.sampled_from([["--vectors", w["Z"]], ["--workspace", w["ws"], "--model", "b"],
                                     ["--vectors", w["missing"]]]))
    opts = data.draw(options([("-k", numbers), ("--query-index", numbers), ("--out", output_path(w)),
                              ("--metric", st.sampled_from(["cosine", "euclidean", "dot", "l3"])),
                              ("--method", st.sampled_from(["exact", "auto"]))]))
    argv = ["neighbors", *src, *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FEW
@given(data=st.data())
def test_embed_bad_arguments(world, tmp_path_factory, data):
    w = world
    ws = tmp_path_factory.mktemp("embed") / "e.h5"
    src = data.draw(st.sampled_from([["--data", w["Zv"]], ["--data", w["Zv"], "--encoder", w["ckpt"]],
                                     ["--data", w["Z"], "--encoder", w["ckpt"]], ["--data", w["empty"]],
                                     ["--data", w["folder"]]]))
    opts = data.draw(options([("--workers", numbers), ("--batch-size", numbers), ("--out", output_path(w)),
                              ("--device", st.sampled_from(["cpu", "cuda:7", "nope"]))]))
    argv = ["embed", *src, "--workspace", ws, *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FEW
@given(data=st.data())
def test_finetune_bad_arguments(world, data):
    w = world
    objective = data.draw(st.sampled_from(["ce", "linear", "simclr", "sigreg"]))
    opts = data.draw(options([("--seed", numbers), ("--lr", numbers), ("--temperature", numbers),
                              ("--lambda", numbers), ("--last-n-blocks", numbers), ("--batch-size", numbers),
                              ("--labels", input_file(w)), ("--epochs", small_numbers)]))
    out = data.draw(st.one_of(st.just(w["dir"] / "out.pt"), output_path(w)))
    argv = ["finetune", "--data", w["Zv"], "--encoder", w["ckpt"], "--objective", objective, "--out", out,
            *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FEW
@given(data=st.data())
def test_timeline_bad_arguments(world, data):
    w = world
    opts = data.draw(options([("--probe-size", small_numbers), ("--seed", numbers), ("--batch-size", numbers),
                              ("--layouts-out", output_path(w)), ("--workspace", st.sampled_from([w["folder"], w["file"]]))]))
    data_path = data.draw(st.sampled_from([w["Zv"], w["Z"], w["missing"]]))
    argv = ["timeline", w["run"], "--data", data_path, "--device", "cpu", *opts, "--json", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


@FAST
@given(argv=st.lists(st.sampled_from(["formats", "warmup", "--json", "--nope", "-k", "1", "--help", "--version",
                                      "diagnose", "project", "--vectors", "timeline", "x"]), max_size=4))
def test_any_word_salad_is_clean(argv):
    assume(not (argv and argv[0] == "warmup" and "--help" not in argv))  # warmup compiles kernels: slow
    assume(argv[:1] != [] or "--help" in argv or "--version" in argv)  # no subcommand opens the GUI
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


# --------------------------------------------------------------------------- bad files

def _write_any(path: Path, a) -> Path:
    np.save(path, a, allow_pickle=True)
    return path


bad_arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64, np.float16]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)),
    st.builds(lambda n, d: np.full((n, d), np.nan, np.float32), st.integers(0, 5), st.integers(0, 4)),
    st.builds(lambda n: np.array(["a", "b"] * n), st.integers(0, 20)),
    st.builds(lambda n: np.zeros((n, 3), np.float32), st.integers(0, 20)),
    st.just(np.array([object(), 1], dtype=object)),
)


@FAST
@given(a=bad_arrays, role=st.sampled_from(["vectors", "labels", "second"]),
       cmd=st.sampled_from(["diagnose", "compare", "project", "neighbors"]))
def test_generated_files_never_break_a_command(world, tmp_path_factory, a, role, cmd):
    w = world
    f = _write_any(tmp_path_factory.mktemp("bad") / "a.npy", a)
    if cmd == "diagnose":
        argv = ["diagnose", "--vectors", f, "--quiet"] if role != "labels" else \
            ["diagnose", "--vectors", w["Z"], "--labels", f, "--quiet"]
    elif cmd == "compare":
        argv = ["compare", "--vectors", w["Z"], f, "--quiet"]
    elif cmd == "project":
        argv = ["project", "--vectors", f, "--method", "pca", "--quiet"]
    else:
        argv = ["neighbors", "--vectors", f, "-k", "2", "--query-index", "0", "--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)


def _malformed_workspace(path: Path, how: str) -> Path:
    from explorer.store import FORMAT

    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = 1
        if how == "no-format":
            del f.attrs["format"]
        if how == "version-text":
            f.attrs["version"] = "one"
        if how == "group-is-dataset":
            f.create_dataset("embeddings", data=np.zeros(3))
            return path
        g = f.create_group("embeddings")
        r = g.create_group("k1")
        if how != "no-vectors":
            data = {"vectors-1d": np.zeros(5, np.float32), "vectors-str": np.array([b"a", b"b"]),
                    "vectors-nan": np.full((5, 3), np.nan, np.float32)}.get(how, np.ones((N, 3), np.float32))
            r.create_dataset("vectors", data=data)
        r.attrs["attrs"] = {"attrs-not-json": "{not json", "attrs-list": "[1, 2]", "attrs-number": "3",
                            "attrs-bytes": np.void(b"\xff\xfe")}.get(how, json.dumps({"model": "a"}))
        if how == "record-is-dataset":
            del g["k1"]
            g.create_dataset("k1", data=np.zeros(3))
    return path


MALFORMED = ["no-format", "version-text", "group-is-dataset", "no-vectors", "vectors-1d", "vectors-str",
             "vectors-nan", "attrs-not-json", "attrs-list", "attrs-number", "attrs-bytes", "record-is-dataset"]


@pytest.mark.parametrize("how", MALFORMED)
@pytest.mark.parametrize("cmd", ["project", "diagnose", "neighbors", "compare"])
def test_malformed_workspace_is_one_sentence(tmp_path, how, cmd):
    ws = _malformed_workspace(tmp_path / "bad.h5", how)
    argv = {"project": ["project", "--workspace", ws, "--method", "pca"],
            "diagnose": ["diagnose", "--workspace", ws],
            "neighbors": ["neighbors", "--workspace", ws, "-k", "2", "--query-index", "0"],
            "compare": ["compare", "--workspace", ws, "--models", "a", "a"]}[cmd] + ["--quiet"]
    rc, _, err = run_cli(argv)
    assert_clean(rc, err, argv)
    assert rc == 2, err


# --------------------------------------------------------------------------- good arrays: CLI == library

good_arrays = st.builds(
    lambda n, d, seed, scale: (np.random.default_rng(seed).normal(size=(n, d)) * scale).astype(np.float32),
    st.integers(6, 40), st.integers(2, 9), st.integers(0, 2**31), st.sampled_from([1e-3, 1.0, 50.0]))


@FEW
@given(Z=good_arrays, k=st.integers(1, 5), metric=st.sampled_from(["cosine", "euclidean", "dot"]))
def test_neighbors_cli_matches_float64_reference(tmp_path_factory, Z, k, metric):
    d = tmp_path_factory.mktemp("nn")
    np.save(d / "Z.npy", Z)
    rc, out, err = run_cli(["neighbors", "--vectors", d / "Z.npy", "-k", k, "--metric", metric, "--method", "exact",
                            "--json", "--quiet"])
    assert rc == 0, err
    res = json.loads(out)
    X = Z.astype(np.float64)
    if metric == "cosine":
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        S = U @ U.T
    elif metric == "dot":
        S = X @ X.T
    else:
        S = -np.sqrt(np.maximum(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1), 0))
    np.fill_diagonal(S, -np.inf)
    want = -np.sort(-S, axis=1)[:, :k]
    got = np.array([q["similarities"] for q in res["queries"]])
    tol = 1e-4 * max(1.0, float(np.abs(S[np.isfinite(S)]).max()))
    np.testing.assert_allclose(got, want, atol=tol)
    # the listed neighbours have the listed scores
    idx = np.array([q["neighbors"] for q in res["queries"]])
    np.testing.assert_allclose(np.take_along_axis(S, idx, 1), got, atol=tol)


@FEW
@given(Z=good_arrays)
def test_diagnose_cli_matches_library(tmp_path_factory, Z):
    from explorer.core.jobs import drain
    from explorer.metrics.diagnose import DiagnoseParams, diagnose, to_json

    d = tmp_path_factory.mktemp("dg")
    np.save(d / "Z.npy", Z)
    rc, out, err = run_cli(["diagnose", "--vectors", d / "Z.npy", "--json", "--quiet"])
    assert rc == 0, err
    got = json.loads(out)
    want = json.loads(json.dumps(to_json(drain(diagnose(Z, None, DiagnoseParams())))))
    for key in ("rankme", "std_l2_normalized", "mean_cosine", "dims_99", "sigreg", "uniformity"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    assert got["verdict"]["label"] == want["verdict"]["label"]
    # and RankMe against a float64 formula (Garrido et al. 2023: exp of the entropy of the
    # normalised singular values, eps 1e-7)
    s = np.linalg.svd(Z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert got["rankme"] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-3)


@FEW
@given(Z=good_arrays, dims=st.sampled_from([2, 3]))
def test_project_pca_cli_matches_library_and_sklearn(tmp_path_factory, Z, dims):
    from sklearn.decomposition import PCA

    from explorer.core.jobs import drain
    from explorer.maps import MapParams, make_layout

    assume(Z.shape[1] >= dims)
    d = tmp_path_factory.mktemp("pca")
    np.save(d / "Z.npy", Z)
    rc, out, err = run_cli(["project", "--vectors", d / "Z.npy", "--method", "pca", "--dims", dims,
                            "--out", d / "map.npy", "--quiet"])
    assert rc == 0, err
    got = np.load(d / "map.npy")
    lib = drain(make_layout(Z, MapParams(method="pca", n_components=dims)))
    np.testing.assert_array_equal(got, lib.coords)
    ref = PCA(dims).fit_transform(Z.astype(np.float64))
    ev = PCA(dims).fit(Z.astype(np.float64)).explained_variance_
    for j in range(dims):  # each axis up to sign, where its eigenvalue is well separated
        gaps = np.abs(np.delete(PCA(Z.shape[1]).fit(Z.astype(np.float64)).explained_variance_, j) - ev[j])
        if gaps.min() < 1e-3 * ev[0]:
            continue
        c = got[:, j].astype(np.float64)
        scale = np.abs(ref[:, j]).max() + 1e-12
        assert min(np.abs(c - ref[:, j]).max(), np.abs(c + ref[:, j]).max()) <= 1e-3 * scale


@FEW
@given(A=good_arrays, seed=st.integers(0, 1000))
def test_compare_cli_matches_float64_linear_cka(tmp_path_factory, A, seed):
    d = tmp_path_factory.mktemp("cka")
    B = (A @ np.random.default_rng(seed).normal(size=(A.shape[1], 3))).astype(np.float32)
    B += np.random.default_rng(seed + 1).normal(size=B.shape).astype(np.float32)
    np.save(d / "A.npy", A)
    np.save(d / "B.npy", B)
    assume(A.shape[0] > 3)
    rc, out, err = run_cli(["compare", "--vectors", d / "A.npy", d / "B.npy", "-k", 2, "--mutual-k", 2,
                            "--json", "--quiet"])
    assert rc == 0, err
    got = json.loads(out)
    X = A.astype(np.float64) - A.mean(0)
    Y = B.astype(np.float64) - B.mean(0)
    cka = np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    assert got["linear_cka"] == pytest.approx(cka, abs=1e-4)


# --------------------------------------------------------------------------- documented ranges

def test_every_numeric_option_has_a_documented_range():
    from explorer.cli import build_parser
    from explorer.commands._args import _Range, numeric_actions

    seen = 0
    for cmd, action in numeric_actions(build_parser()):
        seen += 1
        flag = action.option_strings[-1] if action.option_strings else action.dest
        if action.choices is not None:
            continue  # e.g. --dims {2,3}: argparse lists them
        assert isinstance(action.type, _Range), f"{cmd} {flag}: plain {action.type} without a range"
        assert action.help and action.type.text.split(" or ")[-1] in action.help, \
            f"{cmd} {flag}: help {action.help!r} does not give the range {action.type.text!r}"
    assert seen >= 20


@pytest.mark.parametrize("spec, good, bad", [
    ("int_range(1, 10)", ["1", "10", "1e1", " 3 "], ["0", "11", "1.5", "nan", "x", "", "1e400"]),
    ("int_range(2, 9, extra=(0,))", ["0", "2", "9"], ["1", "-1", "10"]),
    ("float_range(0.0, 1.0, lo_open=True)", ["1", "0.5", "1e-9"], ["0", "-0.0", "nan", "inf", "-inf", "1.0001"]),
    ("seed_type(allow_none=True)", ["-1", "0", "4294967295"], ["-2", "4294967296", "99999999999999999999"]),
])
def test_range_types_accept_exactly_their_range(spec, good, bad):
    import argparse

    from explorer.commands import _args

    t = eval(spec, vars(_args))
    for s in good:
        t(s)
    for s in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            t(s)
