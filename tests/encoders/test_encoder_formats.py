"""Encoder formats on real files written to tmp_path; outputs compared with the original
module run directly (independent of the loader)."""

from __future__ import annotations

import argparse
import json
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from explorer.encoders import ENCODERS, embed_batch, open_encoder
from explorer.encoders.archs import small_cnn
from explorer.core.errors import CheckpointError, InputError


class TinyNet(nn.Module):
    """Module-level so that a pickled instance can be unpickled (trusted path)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics, so that a load that silently kept the
    initialisation would be caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cnn():
    return _randomised(small_cnn())


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _reference(model, x):
    with torch.no_grad():
        return model(x).double().numpy()


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=tol, atol=tol)


# -- TorchScript -------------------------------------------------------------------------
def test_torchscript_round_trip_equals_eager(tmp_path, cnn, images):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(cnn), str(path),
                   _extra_files={"meta.json": json.dumps({"preprocess": {"size": 32, "mean": [0.4] * 3}})})
    enc = open_encoder(path)
    assert enc.format == "torchscript"
    assert enc.preprocess.mean == (0.4, 0.4, 0.4)
    _close(embed_batch(enc, images), _reference(cnn, images))
    assert enc.layers() == []
    with pytest.raises(InputError, match="only its output"):
        open_encoder(path, layer="embed")


# -- weights only ------------------------------------------------------------------------
def test_state_dict_with_module_prefix(tmp_path, cnn, images):
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in cnn.state_dict().items()}, path)
    enc = open_encoder(path, arch="small_cnn")
    assert enc.format == "state_dict"
    assert enc.info["prefix_stripped"] == "module."
    assert enc.info["arch"] == "small_cnn"
    _close(embed_batch(enc, images), _reference(cnn, images))
    # the built-in architecture's preprocessing is the default
    assert enc.preprocess.size == 32 and enc.preprocess.kind == "image"


def test_safetensors(tmp_path, cnn, images):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, str(path),
              metadata={"arch": "small_cnn", "epoch": "7"})
    enc = open_encoder(path)  # architecture from the file's metadata
    assert enc.format == "safetensors"
    assert enc.info["epoch"] == 7
    _close(embed_batch(enc, images), _reference(cnn, images))


def test_lightning_checkpoint_nested_with_model_prefix(tmp_path, cnn, images):
    path = tmp_path / "epoch=3-step=120.ckpt"
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in cnn.state_dict().items()}
        | {"criterion.temperature": torch.tensor(0.1)},
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.2.0",
        "hyper_parameters": argparse.Namespace(lr=0.1, arch="small_cnn"),
        "callbacks": {"ModelCheckpoint": {"best_model_score": np.float64(0.25)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
    }
    torch.save(ckpt, path)
    enc = open_encoder(path)  # no --arch: hyper_parameters name it
    assert enc.info["nested_key"] == "state_dict"
    assert enc.info["prefix_stripped"] == "model."
    assert enc.info["epoch"] == 3 and enc.info["step"] == 120
    assert enc.info["ignored_keys"] == 1  # the loss's tensor lives outside "model."
    _close(embed_batch(enc, images), _reference(cnn, images))


@pytest.mark.parametrize("key", ["model", "model_state_dict", "state_dict"])
def test_training_dict_layouts(tmp_path, cnn, images, key):
    path = tmp_path / f"{key}.pth"
    torch.save({key: cnn.state_dict(), "epoch": 2, "optimizer": {"state": {}}}, path)
    enc = open_encoder(path, arch="small_cnn")
    assert enc.info["nested_key"] == key
    _close(embed_batch(enc, images), _reference(cnn, images))


FACTORY = '''
import torch.nn as nn

PREPROCESS = {"kind": "vector"}


class Head(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, 16), nn.Tanh())
        self.out = nn.Linear(16, d_out)

    def forward(self, x):
        return self.out(self.body(x))


def make(d_in=6, d_out=3):
    return Head(d_in, d_out)
'''


def test_factory_file(tmp_path):
    src = tmp_path / "f.py"
    src.write_text(FACTORY)
    ns: dict = {}
    exec(compile(FACTORY, "reference", "exec"), ns)  # an independent instance of the user's code
    ref = _randomised(ns["make"](d_in=6, d_out=3), seed=3)
    path = tmp_path / "head.pt"
    torch.save({f"encoder.{k}": v for k, v in ref.state_dict().items()}, path)
    enc = open_encoder(path, factory=f"{src}:make", arch_kwargs={"d_in": 6, "d_out": 3})
    assert enc.preprocess.kind == "vector"
    assert enc.info["factory"].endswith("f.py:make")
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    _close(embed_batch(enc, x), _reference(ref, x))
    # the same file named through arch= works too; a missing function is named
    assert open_encoder(path, arch=f"{src}:make").info["arch"] == "f.py:make"
    with pytest.raises(InputError, match="f.py has no function 'nope'"):
        open_encoder(path, factory=f"{src}:nope")


def test_sidecar_json_gives_architecture_and_preprocess(tmp_path, cnn):
    path = tmp_path / "plain.pt"
    torch.save(cnn.state_dict(), path)
    (tmp_path / "plain.pt.json").write_text(json.dumps(
        {"arch": "small_cnn", "preprocess": {"size": 48, "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]},
         "step": 500}))
    enc = open_encoder(path)
    assert enc.preprocess.size == 48 and enc.preprocess.mean == (0.1, 0.2, 0.3)
    assert enc.info["step"] == 500
    assert enc.describe()["preprocess"]["size"] == 48
    # the user's preprocessing wins
    assert open_encoder(path, preprocess={"size": 64}).preprocess.size == 64


def test_architecture_guessed_when_weights_fit_one_builtin(tmp_path, cnn, images):
    path = tmp_path / "anon.pth"
    torch.save(cnn.state_dict(), path)
    enc = open_encoder(path)
    assert enc.info["arch"] == "small_cnn" and enc.info["arch_guessed"]
    _close(embed_batch(enc, images), _reference(cnn, images))


def test_weights_without_architecture_are_refused_plainly(tmp_path):
    path = tmp_path / "lonely.pt"
    torch.save(TinyNet().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"lonely.pt holds only weights; name the architecture"):
        open_encoder(path)


# -- checkpoints that do not fit -----------------------------------------------------------
def test_mismatched_checkpoint_lists_keys_and_shapes(tmp_path):
    path = tmp_path / "model.pt"
    sd = _randomised(small_cnn(embed_dim=64)).state_dict()
    del sd["features.block1.conv.weight"]
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        open_encoder(path, arch="small_cnn")
    msg = str(info.value)
    assert msg.startswith("model.pt does not fit small_cnn: 1 missing key (features.block1.conv.weight)")
    assert "embed.weight 64x128 in the file vs 128x128 in the model" in msg
    assert "shape mismatches" in msg
    assert "\n" not in msg


def test_unrelated_weights_say_nothing_matches(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(TinyNet().state_dict(), path)
    with pytest.raises(CheckpointError, match="other.pt does not fit small_cnn: none of its 4 tensors"):
        open_encoder(path, arch="small_cnn")


def test_unknown_architecture(tmp_path, cnn):
    path = tmp_path / "m.pt"
    torch.save(cnn.state_dict(), path)
    with pytest.raises(InputError, match="Unknown architecture 'resnet9000'; built-in ones: .*small_cnn"):
        open_encoder(path, arch="resnet9000")


# -- files that are not checkpoints -------------------------------------------------------
def test_text_file_is_not_a_checkpoint(tmp_path):
    for name in ("notes.pt", "notes.txt"):
        path = tmp_path / name
        path.write_text("epoch 1: loss 0.3\n")
        with pytest.raises(CheckpointError, match=f"{name} is not a PyTorch checkpoint"):
            open_encoder(path, arch="small_cnn")


def test_random_bytes_and_truncated_archive(tmp_path, cnn):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="junk.pth"):
        open_encoder(junk, arch="small_cnn")
    legacy = tmp_path / "legacy.pt"  # a pickle that is not torch's legacy format: not "damaged"
    legacy.write_bytes(__import__("pickle").dumps(123))
    with pytest.raises(CheckpointError, match=r"^legacy.pt is not a readable PyTorch checkpoint \(Invalid magic number"):
        open_encoder(legacy, arch="small_cnn")
    good = tmp_path / "good.pt"
    torch.save(cnn.state_dict(), good)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt is damaged or incomplete"):
        open_encoder(cut, arch="small_cnn")
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors file"):
        open_encoder(bad_st, arch="small_cnn")
    bad_ts = tmp_path / "broken_script.pt"
    scripted = tmp_path / "s.pt"
    torch.jit.save(torch.jit.script(TinyNet()), str(scripted))
    with zipfile.ZipFile(scripted) as zin, zipfile.ZipFile(bad_ts, "w") as zout:
        for n in zin.namelist():
            if not n.endswith("data.pkl"):
                zout.writestr(n, zin.read(n))
    with pytest.raises(CheckpointError, match="broken_script.pt looks like a TorchScript file but cannot be loaded"):
        open_encoder(bad_ts)


def test_pickled_module_needs_trust(tmp_path, images):
    model = _randomised(TinyNet(), seed=5)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError) as info:
        open_encoder(path)
    msg = str(info.value)
    assert msg.startswith("whole.pt contains code")
    assert "TinyNet" in msg and "--trust" in msg
    enc = open_encoder(path, trust=True)
    assert enc.info["pickled_module"] and enc.info["arch"] == "TinyNet"
    _close(embed_batch(enc, images), _reference(model, images))
    # a trusted training dict holding the module under "model"
    both = tmp_path / "dict_with_module.pt"
    torch.save({"model": model, "epoch": 1}, both)
    with pytest.raises(CheckpointError, match="contains code"):
        open_encoder(both)
    _close(embed_batch(open_encoder(both, trust=True), images), _reference(model, images))


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        open_encoder(tmp_path / "nope.pt")
    with pytest.raises(InputError, match="Unknown encoder format 'keras'"):
        open_encoder(tmp_path, fmt="keras")
    with pytest.raises(InputError, match="not a model Embedding Explorer can read"):
        open_encoder(tmp_path)


# -- optional extras ---------------------------------------------------------------------
def test_hf_folder_without_transformers_says_what_to_install(tmp_path):
    try:
        import transformers  # noqa: F401
        pytest.skip("transformers is installed here")
    except ImportError:
        pass
    folder = tmp_path / "minilm"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    assert ENCODERS.find(folder)[0].name == "hf"
    with pytest.raises(InputError, match=r"minilm is a Hugging Face model folder.*embedding-explorer\[hf\]"):
        open_encoder(folder)


def test_onnx_without_onnxruntime_says_what_to_install(tmp_path):
    try:
        import onnxruntime  # noqa: F401
        pytest.skip("onnxruntime is installed here")
    except ImportError:
        pass
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(InputError, match=r"model.onnx is an ONNX model.*embedding-explorer\[onnx\]"):
        open_encoder(path)


# -- fingerprint ---------------------------------------------------------------------------
def test_fingerprint_follows_weights_layer_pooling_and_preprocess(tmp_path, cnn):
    from safetensors.torch import save_file

    pt, st = tmp_path / "a.pt", tmp_path / "a.safetensors"
    torch.save(cnn.state_dict(), pt)
    save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, str(st))
    a = open_encoder(pt, arch="small_cnn")
    b = open_encoder(st, arch="small_cnn")
    assert a.fingerprint() == b.fingerprint()  # same weights, two file formats
    assert len(a.fingerprint()) == 64
    changed = {k: v.clone() for k, v in cnn.state_dict().items()}
    changed["embed.bias"][0] += 1e-3
    torch.save(changed, tmp_path / "c.pt")
    assert open_encoder(tmp_path / "c.pt", arch="small_cnn").fingerprint() != a.fingerprint()
    assert open_encoder(pt, arch="small_cnn", layer="features.block3").fingerprint() != a.fingerprint()
    assert open_encoder(pt, arch="small_cnn", pooling="flatten").fingerprint() != a.fingerprint()
    assert open_encoder(pt, arch="small_cnn", preprocess={"size": 64}).fingerprint() != a.fingerprint()
    # independent digest of the tensors: sha256 over names/dtypes/shapes/bytes in sorted order
    import hashlib

    h = hashlib.sha256()
    for name in sorted(cnn.state_dict()):
        t = cnn.state_dict()[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.contiguous().numpy().tobytes())
    assert a.weights_digest() == h.hexdigest()


# -- reopening, CLI, devices ---------------------------------------------------------------
def test_mismatch_names_the_builtin_that_fits(tmp_path):
    from explorer.encoders.archs import mlp

    path = tmp_path / "vec.pt"
    torch.save(mlp().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"vec.pt does not fit small_cnn: .*it does fit the built-in mlp"):
        open_encoder(path, arch="small_cnn")


def test_reopen_from_description_gives_the_same_encoder(tmp_path, cnn):
    from explorer.encoders import reopen_encoder

    path = tmp_path / "m.pt"
    torch.save(cnn.state_dict(), path)
    enc = open_encoder(path, arch="small_cnn", layer="features.block2", pooling="flatten",
                       preprocess={"size": 40})
    again = reopen_encoder(json.loads(json.dumps(enc.describe())))
    assert (again.layer, again.pooling, again.preprocess) == (enc.layer, enc.pooling, enc.preprocess)
    assert again.fingerprint() == enc.fingerprint()
    src = tmp_path / "f.py"
    src.write_text(FACTORY)
    head = tmp_path / "head.pt"
    ns: dict = {}
    exec(compile(FACTORY, "reference", "exec"), ns)
    torch.save(ns["make"](d_in=4, d_out=2).state_dict(), head)
    f_enc = open_encoder(head, factory=f"{src}:make", arch_kwargs={"d_in": 4, "d_out": 2})
    assert reopen_encoder(f_enc.describe()).fingerprint() == f_enc.fingerprint()


def test_cli_prints_one_line_and_exits_2_for_a_bad_checkpoint(tmp_path, capsys):
    from explorer.cli import main

    np.save(tmp_path / "v.npy", np.zeros((4, 8), np.float32))
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    code = main(["embed", "--data", str(tmp_path / "v.npy"), "--encoder", str(bad),
                 "--workspace", str(tmp_path / "w.h5"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "embedding-explorer: error: bad.pt is not a PyTorch checkpoint (it is neither a torch.save archive nor a pickle)."


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_embed_batch_on_cuda_matches_cpu(tmp_path, cnn, images):
    path = tmp_path / "m.pt"
    torch.save(cnn.state_dict(), path)
    enc = open_encoder(path, arch="small_cnn", layer="features.block3")
    cpu = embed_batch(enc, images).numpy()
    enc.module.cuda()
    gpu = embed_batch(enc, images.cuda())
    assert gpu.device.type == "cuda"
    _close(gpu.cpu().numpy(), cpu, tol=1e-3)
    assert enc.fingerprint() == open_encoder(path, arch="small_cnn", layer="features.block3").fingerprint()
