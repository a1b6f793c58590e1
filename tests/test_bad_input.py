"""Each bad input of issue 15, by name: one sentence on stderr and exit 2 (or a one-line
warning where the input is usable), never a traceback, and no work started before the check."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def line_of(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    import torch

    from explorer.encoders.archs import mlp

    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    files = {
        "Z": rng.normal(size=(40, 8)).astype(np.float32),
        "Z2": rng.normal(size=(40, 5)).astype(np.float32),
        "two_rows": rng.normal(size=(2, 8)).astype(np.float32),
        "y": np.arange(40) % 4,
        "y_str": np.array(["cat", "dog"] * 20),
        "y_float": rng.normal(size=40),
        "y_float_int": (np.arange(40) % 4).astype(np.float64),
        "y_nan": np.where(np.arange(40) == 7, np.nan, np.arange(40) % 2),
        "y_one": np.zeros(40, np.int64),
        "y_neg": np.where(np.arange(40) == 3, -5, np.arange(40) % 2),
        "cube": rng.normal(size=(40, 2, 4)).astype(np.float32),
        "complex": (rng.normal(size=(40, 8)) + 1j).astype(np.complex64),
        "zeros": np.vstack([np.zeros((3, 8)), rng.normal(size=(37, 8))]).astype(np.float32),
        "nan": np.where(np.arange(320).reshape(40, 8) == 93, np.nan, 1.0).astype(np.float32),
    }
    p = {k: d / f"{k}.npy" for k in files}
    for k, a in files.items():
        np.save(p[k], a)
    (d / "empty.npy").write_bytes(b"")
    p["empty"] = d / "empty.npy"
    kw = {"in_dim": 8, "hidden": 16, "out_dim": 6, "layers": 1}
    torch.manual_seed(0)
    p["mlp"] = d / "mlp.pt"
    torch.save(mlp(**kw).state_dict(), p["mlp"])
    Path(str(p["mlp"]) + ".json").write_text(json.dumps({"arch": "mlp", "arch_kwargs": kw,
                                                          "preprocess": {"kind": "vector"}}))
    nan_model = mlp(**kw)
    with torch.no_grad():
        nan_model.embed.weight[0, 0] = float("inf")  # any input with x[hidden 0] != 0 gives inf/NaN
    p["nan_mlp"] = d / "nan_mlp.pt"
    torch.save(nan_model.state_dict(), p["nan_mlp"])
    Path(str(p["nan_mlp"]) + ".json").write_text(Path(str(p["mlp"]) + ".json").read_text())
    p["images"] = Path(__file__).resolve().parents[1] / "sample_data" / "digits"
    p["dir"] = d
    return p


def ft(w, *extra):
    return ["finetune", "--data", w["Z"], "--encoder", w["mlp"], "--epochs", "1", "--out", w["dir"] / "ft.pt", *extra]


ERRORS = {
    "empty .npy as data": (lambda w: ["diagnose", "--vectors", w["empty"]], "empty"),
    "empty .npy as labels": (lambda w: ["diagnose", "--vectors", w["Z"], "--labels", w["empty"]], "empty"),
    "diagnose on 2 rows": (lambda w: ["diagnose", "--vectors", w["two_rows"]], "at least 3"),
    "diagnose --max-rows -1": (lambda w: ["diagnose", "--vectors", w["Z"], "--max-rows", "-1"], "--max-rows"),
    "diagnose --pair-points -1": (lambda w: ["diagnose", "--vectors", w["Z"], "--pair-points", "-1"], "--pair-points"),
    "diagnose --pair-points 0": (lambda w: ["diagnose", "--vectors", w["Z"], "--pair-points", "0"], "--pair-points"),
    "compare --knn-points -1": (lambda w: ["compare", "--vectors", w["Z"], w["Z2"], "--knn-points", "-1"], "--knn-points"),
    "compare --mutual-k -1": (lambda w: ["compare", "--vectors", w["Z"], w["Z2"], "--mutual-k", "-1"], "--mutual-k"),
    "finetune --seed -1": (lambda w: ft(w, "--objective", "simclr", "--seed", "-1"), "--seed"),
    "finetune --lr nan": (lambda w: ft(w, "--objective", "simclr", "--lr", "nan"), "--lr"),
    "finetune --temperature -1": (lambda w: ft(w, "--objective", "simclr", "--temperature", "-1"), "--temperature"),
    "finetune --lambda -1": (lambda w: ft(w, "--objective", "sigreg", "--lambda", "-1"), "--lambda"),
    "finetune --last-n-blocks -1": (lambda w: ft(w, "--objective", "simclr", "--last-n-blocks", "-1"), "--last-n-blocks"),
    "project --seed 1e20": (lambda w: ["project", "--vectors", w["Z"], "--seed", "99999999999999999999"], "--seed"),
    "project --n-epochs 1e12": (lambda w: ["project", "--vectors", w["Z"], "--n-epochs", "1e12"], "--n-epochs"),
    "embed --workers 100000": (lambda w: ["embed", "--data", w["Z"], "--workspace", w["dir"] / "e.h5", "--workers",
                                          "100000"], "--workers"),
    "negative labels for ce": (lambda w: ft(w, "--objective", "ce", "--labels", w["y_neg"]), "label 3 is -5"),
    "float labels": (lambda w: ["diagnose", "--vectors", w["Z"], "--labels", w["y_float"]], "not a whole number"),
    "NaN labels": (lambda w: ["diagnose", "--vectors", w["Z"], "--labels", w["y_nan"]], "label 7 is nan"),
    "one class for ce": (lambda w: ft(w, "--objective", "ce", "--labels", w["y_one"]), "at least two"),
    "3-D data into an MLP": (lambda w: ["finetune", "--data", w["cube"], "--encoder", w["mlp"], "--objective",
                                        "simclr", "--out", w["dir"] / "ft.pt"], "takes vector input"),
    "image folder into a vector MLP": (lambda w: ["finetune", "--data", w["images"], "--encoder", w["mlp"],
                                                  "--objective", "simclr", "--out", w["dir"] / "ft.pt"],
                                       "takes vector input"),
    "vectors of the wrong width into an MLP": (lambda w: ["embed", "--data", w["Z2"], "--encoder", w["mlp"],
                                                          "--workspace", w["dir"] / "e.h5"], "5-wide"),
    "complex vectors": (lambda w: ["project", "--vectors", w["complex"], "--method", "pca"], "complex"),
    "NaN vectors": (lambda w: ["neighbors", "--vectors", w["nan"], "-k", "2"], "row 11"),
    "NaN vectors from a model": (lambda w: ["embed", "--data", w["Z"], "--encoder", w["nan_mlp"], "--workspace",
                                            w["dir"] / "nan.h5"], "item 0"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_input_is_one_sentence_and_exit_2(w, case):
    argv, fragment = ERRORS[case]
    argv = argv(w) + ["--quiet"]
    rc, out, err = run_cli(argv)
    assert rc == 2, err
    line = line_of(err)
    assert line.startswith("embedding-explorer") and "error:" in line
    assert fragment in line, line
    assert not (w["dir"] / "ft.pt").exists()


def test_nan_vectors_from_a_model_are_not_stored(w):
    from explorer.store import Workspace

    rc, _, err = run_cli(ERRORS["NaN vectors from a model"][0](w) + ["--quiet"])
    assert rc == 2
    assert Workspace(w["dir"] / "nan.h5").list("embeddings") == []


WARNINGS = {
    "all-zero vectors with cosine": (lambda w: ["neighbors", "--vectors", w["zeros"], "-k", "2", "--query-index", "5"],
                                     "3 rows are all zero"),
    "a single class": (lambda w: ["diagnose", "--vectors", w["Z"], "--labels", w["y_one"], "--json"], "same class"),
}


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_doubtful_input_is_warned_about_in_one_line(w, case):
    argv, fragment = WARNINGS[case]
    rc, out, err = run_cli(argv(w) + ["--quiet"])
    assert rc == 0, err
    line = line_of(err)
    assert line.startswith("embedding-explorer: warning:") and fragment in line, line


def test_single_class_gives_no_probe_accuracy(w):
    rc, out, _ = run_cli(["diagnose", "--vectors", w["Z"], "--labels", w["y_one"], "--json", "--quiet"])
    assert rc == 0
    r = json.loads(out)
    assert r.get("knn_accuracy") is None and r.get("linear_probe_accuracy") is None


def test_labels_that_are_names_or_whole_floats_are_classes(w):
    """String labels and integral floats are accepted and give the same probes as the
    integer codes they stand for."""
    rc, out, err = run_cli(["diagnose", "--vectors", w["Z"], "--labels", w["y_float_int"], "--json", "--quiet"])
    rc2, out2, _ = run_cli(["diagnose", "--vectors", w["Z"], "--labels", w["y"], "--json", "--quiet"])
    assert rc == rc2 == 0, err
    assert json.loads(out)["knn_accuracy"] == json.loads(out2)["knn_accuracy"]
    rc, out, err = run_cli(["diagnose", "--vectors", w["Z"], "--labels", w["y_str"], "--json", "--quiet"])
    codes = np.where(np.load(w["y_str"]) == "cat", 0, 1)
    np.save(w["dir"] / "codes.npy", codes)
    rc2, out2, _ = run_cli(["diagnose", "--vectors", w["Z"], "--labels", w["dir"] / "codes.npy", "--json", "--quiet"])
    assert rc == rc2 == 0, err
    assert json.loads(out)["knn_accuracy"] == json.loads(out2)["knn_accuracy"]


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch):
    import explorer.commands.formats as formats

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(formats, "run", broken)  # a bug somewhere in a command
    rc, _, err = run_cli(["formats"])
    assert rc == 1
    line = line_of(err)
    assert "internal error: ZeroDivisionError" in line and "EXPLORER_DEBUG=1" in line
    monkeypatch.setenv("EXPLORER_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_cli(["formats"])
