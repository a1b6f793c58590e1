"""The optional encoder formats, run for real when their extras are installed (skipped cleanly
otherwise): a tiny BERT folder through ``[hf]`` and a tiny exported CNN through ``[onnx]``.

Both are built here, offline, and their embeddings are checked against a forward pass written in
the test (float64 where the model allows it), not against the encoder's own output.
"""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.data.base import Dataset
from explorer.embed import EmbedParams, embed
from explorer.encoders import open_encoder
from explorer.core.errors import CheckpointError
from explorer.core.jobs import drain

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "red", "blue", "bird", "flew", "over", "house",
         "tree", "ran", "fast", "slow", "big", "small", "green", "##s", "##ed", "and", "is"]
TEXTS = ["the cat sat on the mat", "a dog", "blue bird flew over the big green house and tree",
         "dogs ran fast", "the small red cat is slow", "tree", "a big blue house",
         "the bird sat on a small mat and the cat ran over the red tree", "unknownword cat"]


class MemTexts(Dataset):
    def __init__(self, texts):
        super().__init__(name="texts", source=Path("memory"), kind="text", n=len(texts))
        self._texts = list(texts)

    def text(self, i):
        return self._texts[i]

    def fingerprint(self):
        return hashlib.sha256("\n".join(self._texts).encode()).hexdigest()


class MemImages(Dataset):
    def __init__(self, x):
        super().__init__(name="imgs", source=Path("memory"), kind="image", n=len(x))
        self.x = x

    def image(self, i, size=None):
        return self.x[i]

    def images(self, indices, size):
        return np.stack([self.x[int(i)] for i in indices])

    def fingerprint(self):
        return hashlib.sha256(self.x.tobytes()).hexdigest()


# -- [hf] ---------------------------------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # any attempt to open a socket fails the test: nothing may be downloaded
    import socket

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)


def tiny_bert(folder: Path):
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    model = transformers.BertModel(cfg).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return model, tok


def test_hf_bert_folder_embeds_as_the_masked_mean_of_last_hidden_state(tmp_path, offline):
    pytest.importorskip("transformers")
    model, tok = tiny_bert(tmp_path / "tiny-bert")
    enc = open_encoder(tmp_path / "tiny-bert")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert enc.format == "hf" and enc.preprocess.kind == "text" and enc.pooling == "mean"
    assert enc.info["arch"] == "BertModel" and enc.info["parameters"] == sum(p.numel() for p in model.parameters())

    res = drain(embed(MemTexts(TEXTS), enc, EmbedParams(device="cpu", batch_size=4)))
    assert res.vectors.shape == (len(TEXTS), 16) and res.vectors.dtype == np.float32

    # reference: each text alone (no padding at all), float64 model, plain mean over its tokens
    ref_model = model.double()
    rows = []
    with torch.no_grad():
        for t in TEXTS:
            ids = tok(t, return_tensors="pt")
            h = ref_model(**ids).last_hidden_state[0].numpy()  # (T, 16), every token real
            rows.append(h.mean(axis=0))
    ref = np.stack(rows)
    # padding in batches of 4 must not change a text's vector
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)
    assert len({len(tok(t)["input_ids"]) for t in TEXTS}) > 3  # the batches really were padded
    assert enc.fingerprint() == open_encoder(tmp_path / "tiny-bert").fingerprint()


def test_hf_folder_without_weights_is_one_sentence(tmp_path, offline):
    pytest.importorskip("transformers")
    model, _ = tiny_bert(tmp_path / "broken")
    for f in (tmp_path / "broken").iterdir():
        if f.name.startswith("model") or f.suffix in (".safetensors", ".bin"):
            f.unlink()
    with pytest.raises(CheckpointError, match="broken: the Hugging Face model cannot be loaded"):
        open_encoder(tmp_path / "broken")


def test_hf_long_text_is_truncated_to_the_models_positions_and_a_layer_can_be_chosen(tmp_path, offline):
    pytest.importorskip("transformers")
    model, tok = tiny_bert(tmp_path / "tiny-bert")  # 64 positions, tokenizer without a limit
    enc = open_encoder(tmp_path / "tiny-bert", layer="model.embeddings")
    assert enc.preprocess.max_length == 64
    long = " ".join(["the cat sat on the mat"] * 30)  # 180 words, > 64 positions
    texts = [long, "a dog"]
    res = drain(embed(MemTexts(texts), enc, EmbedParams(device="cpu", batch_size=2)))
    ids = tok(long, truncation=True, max_length=64, return_tensors="pt")
    assert ids["input_ids"].shape[1] == 64
    ref_model = model.double()
    with torch.no_grad():
        ref = [ref_model(**ids, output_hidden_states=True).hidden_states[0][0].numpy().mean(0),
               ref_model(**tok("a dog", return_tensors="pt"), output_hidden_states=True).hidden_states[0][0].numpy().mean(0)]
    np.testing.assert_allclose(res.vectors, np.stack(ref), rtol=1e-4, atol=1e-5)


def image_batch(n, seed=5):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def normalised(x, mean, std):
    t = torch.from_numpy(x.astype(np.float64) / 255.0).permute(0, 3, 1, 2)
    return (t - torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(1, -1, 1, 1)


def test_hf_vit_folder_embeds_the_cls_token(tmp_path, offline):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32)
    model = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
    folder = tmp_path / "tiny-vit"
    model.save_pretrained(str(folder))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=list(mean),
                                   image_std=list(std)).save_pretrained(str(folder))
    enc = open_encoder(folder)
    pp = enc.preprocess
    assert pp.kind == "image" and pp.size == 32 and pp.mean == mean and pp.std == std
    x = image_batch(11)
    res = drain(embed(MemImages(x), enc, EmbedParams(device="cpu", batch_size=4)))
    with torch.no_grad():
        ref = model.double()(pixel_values=normalised(x, mean, std)).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)


def test_hf_clip_folder_with_tokenizer_and_image_processor_embeds_projected_image_features(tmp_path, offline):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tiny-clip"
    tiny_bert(tmp_path / "bert")  # a tokenizer to sit beside the image processor, as in real CLIP folders
    transformers.BertTokenizer(vocab_file=str(tmp_path / "bert" / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(2)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                           num_hidden_layers=1, num_attention_heads=2), projection_dim=8)
    model = transformers.CLIPModel(cfg).eval()
    model.save_pretrained(str(folder))
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                    image_mean=list(mean), image_std=list(std)).save_pretrained(str(folder))
    enc = open_encoder(folder)
    assert enc.preprocess.kind == "image" and enc.preprocess.size == 32
    x = image_batch(9, seed=6)
    res = drain(embed(MemImages(x), enc, EmbedParams(device="cpu", batch_size=4)))
    assert res.vectors.shape == (9, 8)
    m = model.double()
    with torch.no_grad():  # projection of the vision tower's pooled (post-layernorm CLS) output
        pooled = m.vision_model(pixel_values=normalised(x, mean, std)).pooler_output
        ref = m.visual_projection(pooled).numpy()
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)


# -- [onnx] -------------------------------------------------------------------------------------
def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8)).eval()


def export_onnx(model, path: Path):
    pytest.importorskip("onnx")
    x = torch.zeros(2, 3, 32, 32)
    torch.onnx.export(model, (x,), str(path), input_names=["pixels"], output_names=["embedding"],
                      dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False)


def test_onnx_model_embeds_like_the_torch_model_it_came_from(tmp_path):
    pytest.importorskip("onnxruntime")
    m = tiny_cnn()
    path = tmp_path / "tiny.onnx"
    export_onnx(m, path)
    enc = open_encoder(path)
    pp = enc.preprocess
    assert enc.format == "onnx" and pp.kind == "image" and (pp.size, pp.channels) == (32, 3)
    assert enc.layers() == []  # no hooks into an ONNX graph

    x = np.random.default_rng(2).integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    res = drain(embed(MemImages(x), enc, EmbedParams(device="cpu", batch_size=8)))
    assert res.vectors.shape == (23, 8) and res.vectors.dtype == np.float32

    # reference: the torch model in float64 on (x/255 - mean) / std, as the preprocess documents
    t = torch.from_numpy(x.astype(np.float64) / 255.0).permute(0, 3, 1, 2)
    mean = torch.tensor(pp.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = m.double()((t - mean) / std).numpy()
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)
    # the fingerprint follows the file's bytes
    fp = enc.fingerprint()
    assert fp == open_encoder(path).fingerprint()
    m2 = tiny_cnn()
    with torch.no_grad():
        m2[-1].bias.add_(1.0)
    export_onnx(m2, tmp_path / "other.onnx")
    assert open_encoder(tmp_path / "other.onnx").fingerprint() != fp


def test_onnx_fixed_batch_graph_and_float16_input(tmp_path):
    """``torch.onnx.export`` without ``dynamic_axes`` fixes the batch at the example's size (1
    here); a float16 graph wants float16 input. Both still embed every row."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    m = tiny_cnn()
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(m, (torch.zeros(1, 3, 32, 32),), str(fixed), dynamo=False)
    half = tmp_path / "half.onnx"
    torch.onnx.export(tiny_cnn().half(), (torch.zeros(3, 3, 32, 32, dtype=torch.float16),), str(half), dynamo=False)
    assert onnx.load(str(half)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    x = image_batch(10, seed=7)
    with torch.no_grad():
        ref = m.double()(normalised(x, (0.5,) * 3, (0.5,) * 3)).numpy()
    res = drain(embed(MemImages(x), open_encoder(fixed), EmbedParams(device="cpu", batch_size=4)))
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)
    res = drain(embed(MemImages(x), open_encoder(half), EmbedParams(device="cpu", batch_size=4)))
    assert res.vectors.dtype == np.float32
    np.testing.assert_allclose(res.vectors, ref, rtol=2e-2, atol=2e-2)


def test_onnx_garbage_file_is_one_sentence(tmp_path):
    pytest.importorskip("onnxruntime")
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(CheckpointError, match="junk.onnx is not a loadable ONNX model"):
        open_encoder(p)
