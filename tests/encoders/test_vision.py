"""torchvision and timm architectures by name (the [vision] extra), checked against a direct
forward pass with each library's own eval transforms and its own model: the penultimate layer
(classifier removed) with the library's preprocessing, through the CLI on image files.

Skipped when torchvision / timm are not installed (or do not import beside this torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.encoders import open_encoder


def _need(name: str):
    try:
        return __import__(name)
    except Exception as exc:  # a torchvision built for another torch raises RuntimeError
        pytest.skip(f"{name} is not usable here ({type(exc).__name__})")


@pytest.fixture
def photos(tmp_path) -> Path:
    """Three non-square RGB PNGs of different sizes, so resize, crop and interpolation matter."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, (h, w) in zip("abc", [(300, 260), (180, 330), (257, 257)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
        img = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(folder / f"{name}.png")
    return folder


def _pil_images(folder: Path) -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


def _embed_cli(capsys, tmp_path, *argv) -> tuple[np.ndarray, str]:
    out = tmp_path / "v.npy"
    rc = main(["embed", "--workspace", str(tmp_path / "w.h5"), "--out", str(out), "--quiet", *argv])
    _, err = capsys.readouterr()
    assert rc == 0, err
    return np.load(out), err


def _close(got: np.ndarray, want: torch.Tensor) -> None:
    want = want.detach().double().numpy()
    assert got.shape == want.shape
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=2e-5 * scale, rtol=0)


#: Each model's classifier, written out here (its input is the penultimate layer).
CLASSIFIER = {"resnet18": lambda m: m.fc, "resnet50": lambda m: m.fc,
              "efficientnet_b0": lambda m: m.classifier[1], "convnext_tiny": lambda m: m.classifier[2],
              "vit_b_16": lambda m: m.heads.head}


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "resnet50", "convnext_tiny", "vit_b_16"])
def test_torchvision_by_name_gives_penultimate_with_its_own_transforms(name, tmp_path, photos, capsys):
    tv = _need("torchvision")
    import torchvision.models as tvm

    torch.manual_seed(0)
    ref = tvm.get_model(name, weights=None).eval()
    ckpt = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), ckpt)  # a full supervised checkpoint, classifier included
    vecs, err = _embed_cli(capsys, tmp_path, "--data", str(photos), "--encoder", str(ckpt), "--arch", name)

    weights = tvm.get_model_weights(name).DEFAULT
    tf = weights.transforms()  # torchvision's own eval preprocessing
    x = torch.stack([tf(im) for im in _pil_images(photos)])
    head = CLASSIFIER[name](ref)
    seen = []
    h = head.register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    with torch.no_grad():
        ref(x)
    h.remove()
    _close(vecs, seen[0])  # the classifier's input: the penultimate features
    assert "classifier removed" in err and weights.name in err
    assert tv is not None


def test_torchvision_preprocessing_read_from_its_metadata(tmp_path):
    _need("torchvision")
    import torchvision.models as tvm

    torch.manual_seed(0)
    ref = tvm.get_model("efficientnet_b0", weights=None)
    ckpt = tmp_path / "e.pth"
    torch.save(ref.state_dict(), ckpt)
    enc = open_encoder(ckpt, arch="efficientnet_b0")
    t = tvm.EfficientNet_B0_Weights.DEFAULT.transforms()
    pp = enc.preprocess
    assert (pp.size, pp.resize_to) == (t.crop_size[0], t.resize_size[0])
    assert pp.interpolation == t.interpolation.value
    assert list(pp.mean) == list(t.mean) and list(pp.std) == list(t.std)
    assert enc.info["head_removed"].startswith("classifier.1")
    # the user's settings change only the fields they name
    enc2 = open_encoder(ckpt, arch="efficientnet_b0", preprocess={"size": 200})
    assert enc2.preprocess.size == 200 and enc2.preprocess.mean == pp.mean
    assert "set by the user (size)" in enc2.info["preprocess_source"]


def test_timm_by_name_with_cls_pooling(tmp_path, photos, capsys):
    timm = _need("timm")
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    ref = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    ckpt = tmp_path / "vit.pth"
    torch.save(ref.state_dict(), ckpt)  # with its classifier head
    cfg = resolve_data_config({}, model=ref)
    tf = create_transform(**cfg)  # timm's own eval transform (bicubic, crop_pct 0.9)
    x = torch.stack([tf(im) for im in _pil_images(photos)])
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(x), pre_logits=True)
    vecs, err = _embed_cli(capsys, tmp_path, "--data", str(photos), "--encoder", str(ckpt),
                           "--arch", "timm:vit_small_patch16_224", "--pooling", "cls")
    _close(vecs, want)
    assert "bicubic" in err and "timm pretrained_cfg" in err
    # the default (no pooling asked) is the same penultimate layer
    vecs2, _ = _embed_cli(capsys, tmp_path, "--data", str(photos), "--encoder", str(ckpt),
                          "--arch", "timm:vit_small_patch16_224")
    _close(vecs2, want)


def test_timm_hub_folder_opens_as_timm(tmp_path, photos, capsys):
    timm = _need("timm")
    from safetensors.torch import save_file
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(1)
    ref = timm.create_model("resnet18", pretrained=False).eval()
    folder = tmp_path / "hub"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(folder / "model.safetensors"))
    pcfg = {"input_size": [3, 160, 160], "interpolation": "bicubic", "crop_pct": 0.8,
            "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3], "num_classes": 1000}
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 1000,
                                                    "pretrained_cfg": pcfg}))
    tf = create_transform(**resolve_data_config(pcfg))
    x = torch.stack([tf(im) for im in _pil_images(photos)])
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(x), pre_logits=True)
    vecs, err = _embed_cli(capsys, tmp_path, "--data", str(photos), "--encoder", str(folder))
    _close(vecs, want)
    assert open_encoder(folder).format == "timm"


def test_unknown_vision_name_is_one_sentence(tmp_path, capsys):
    _need("torchvision")
    ckpt = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(2)}, ckpt)
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    rc = main(["embed", "--data", str(tmp_path / "x.npy"), "--encoder", str(ckpt), "--arch", "resnet999",
               "--workspace", str(tmp_path / "w.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "resnet999" in err


def test_vision_names_in_a_sidecar_are_registered_names(tmp_path):
    """``torchvision:NAME`` and ``timm:NAME`` in a sidecar resolve as registered architectures
    (they are names, not code), and give the same tensors as the model they name."""
    _need("torchvision")
    timm = _need("timm")
    import torchvision.models as tvm

    torch.manual_seed(2)
    for arch, ref in (("torchvision:resnet18", tvm.resnet18(weights=None)),
                      ("timm:resnet18", timm.create_model("resnet18", pretrained=False))):
        ckpt = tmp_path / f"{arch.split(':')[0]}.pth"
        torch.save(ref.state_dict(), ckpt)
        Path(str(ckpt) + ".json").write_text(json.dumps({"arch": arch}))
        enc = open_encoder(ckpt)
        assert enc.info["arch"] == arch
        got = dict(enc.module.state_dict())
        for k, v in ref.state_dict().items():
            if k in got:
                assert torch.equal(got[k], v)
        assert "head_weights_unused" in enc.info  # the classifier's tensors were in the file
