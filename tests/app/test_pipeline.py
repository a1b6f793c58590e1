"""The workflow without a window: an afternoon driven through :class:`Pipeline` alone (vectors,
then an image folder, encoders that do and do not fit, metadata, save and reopen), and the
order in which a worker pool would run its tasks (the model on screen first)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.app.pipeline import Pipeline, Task, MapSettings, can_embed, run_now
from explorer.app.session_file import plan_restore, restore_job
from explorer.core.jobs import drain
from explorer.core.resources import sample_data_dir
from explorer.app.session import Session

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"
needs_sample = pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")


def _named(session, prefix: str) -> str:
    (mid,) = [k for k in session.models if k.startswith(prefix)]
    return mid


def _pipeline(tmp_path, submit=run_now):
    p = Pipeline(Session(tmp_path / "ws.h5"), submit=submit, settings=MapSettings(method="pca"))
    said = {"info": [], "error": []}
    p.info.connect(said["info"].append)
    p.error.connect(said["error"].append)
    return p, said


@needs_sample
def test_an_afternoon_through_the_pipeline(tmp_path):
    p, said = _pipeline(tmp_path)
    s = p.session
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(120, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", Z)

    # 1. their own vectors: one "precomputed" model, embedded (= the vectors), PCA, diagnostics
    p.open_dataset(tmp_path / "v.npy")
    assert list(s.models) == ["precomputed"] and s.current == "precomputed"
    np.testing.assert_array_equal(s.model().vectors, Z)
    C = Z.astype(np.float64) - Z.mean(0)
    top = np.linalg.svd(C, full_matrices=False)[2][:2]
    expected = C @ top.T
    got = s.model().layouts["pca"].astype(np.float64)
    for j in range(2):  # PCA axes are defined up to sign
        assert abs(abs(np.corrcoef(got[:, j], expected[:, j])[0, 1]) - 1) < 1e-4
    assert s.model().diagnostics is not None and said["error"] == []

    # 2. an image encoder on vectors: added, not used, one sentence (not an error per encoder)
    p.open_encoder(HEALTHY)
    healthy = _named(s, "healthy")
    assert s.models[healthy].vectors is None
    assert said["error"] == [] and "takes image input" in said["info"][-1]
    assert s.current == "precomputed"

    # 3. an image folder: the vectors' own model goes, the image encoder embeds, it is shown
    p.open_dataset(SAMPLE / "digits")
    assert list(s.models) == [healthy] and s.current == healthy
    m = s.model()
    assert m.vectors.shape[0] == len(s.dataset) == 1797
    assert m.layouts["pca"].shape == (1797, 2)
    assert m.diagnostics is not None and said["error"] == []

    # 4. metadata attached: columns to colour by, embeddings and maps kept
    vectors_before = m.vectors
    p.attach_metadata(SAMPLE / "digits_metadata.csv", id_column="path")
    assert s.dataset.metadata and s.model().vectors is vectors_before

    # 5. save and reopen through the session file; everything comes back from the cache
    s.save(tmp_path / "s.eesession")
    plan = plan_restore(tmp_path / "s.eesession")
    assert plan.confirmations == []
    q, said2 = _pipeline(tmp_path)
    q.restore(drain(restore_job(plan)), plan.data)
    assert list(q.session.models) == [healthy] and q.session.current == healthy
    np.testing.assert_array_equal(q.session.model().vectors, vectors_before)
    assert set(q.session.dataset.metadata) == set(s.dataset.metadata)
    assert said2["error"] == []


def test_can_embed_follows_the_kinds():
    from types import SimpleNamespace as NS

    vec = NS(kind="vector", name="v")
    img = NS(kind="image", name="i")
    pre = NS(id="precomputed", encoder=None)
    cnn = NS(id="cnn", encoder=NS(preprocess=NS(kind="image"), info={"input_kind_declared": True}))
    mlp = NS(id="mlp", encoder=NS(preprocess=NS(kind="image"), info={"input_kind_declared": False}))
    assert can_embed(pre, vec) is None and can_embed(pre, img) is not None
    assert can_embed(cnn, img) is None and "image input" in can_embed(cnn, vec)
    assert can_embed(mlp, vec) is None  # undeclared: the embedding tries one item


@needs_sample
def test_the_model_on_screen_is_computed_first(tmp_path):
    """A pool runs the queued task of highest priority first: record the tasks instead of
    running them, then run them in that order and check what came first."""
    queue: list[Task] = []
    p, said = _pipeline(tmp_path, submit=queue.append)
    s = p.session
    for name in ("healthy.pt", "collapsed.pt", "dimcollapsed.pt"):
        p.open_encoder(SAMPLE / "checkpoints" / name)
    while queue:  # loading the encoders
        run_now(queue.pop(0))
    collapsed = _named(s, "collapsed")
    s.set_current(collapsed)
    p.open_dataset(SAMPLE / "digits")
    order = []
    while queue:
        queue.sort(key=lambda t: -t.priority)  # stable: equal priorities keep their order
        t = queue.pop(0)
        order.append(t.name)
        run_now(t)
    # the shown model is embedded, then mapped, before any other model's work
    first_other = min(i for i, n in enumerate(order) if "healthy" in n or "dimcollapsed" in n)
    assert order.index(f"Embed with {collapsed}") < order.index(f"PCA of {collapsed}") < first_other
    assert all(s.models[m].layouts.get("pca") is not None for m in s.models)
    assert said["error"] == []


def test_diagnostics_follow_maps_computed_again_before_they_ran(tmp_path):
    """A model's diagnostics run after its maps. When the maps are asked for again (new
    settings) before the first ones finished, and the first ones never report (their job was
    superseded), the diagnostics still come, once, after the new maps."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(300, 12)).astype(np.float32))
    queue: list[Task] = []
    p, said = _pipeline(tmp_path, submit=queue.append)
    s = p.session
    p.open_dataset(tmp_path / "v.npy")
    while queue and not queue[0].name.startswith("PCA"):
        run_now(queue.pop(0))
    mid = s.current
    superseded = queue.pop(0)
    assert superseded.name == f"PCA of {mid}" and not queue
    p.compute_maps(mid, MapSettings(method="pca", seed=1))
    names = []
    while queue:
        t = queue.pop(0)
        names.append(t.name)
        run_now(t)
    assert names == [f"PCA of {mid}", f"Diagnose {mid}"]
    assert s.models[mid].diagnostics is not None and said["error"] == []


@needs_sample
def test_opening_the_same_checkpoint_twice_keeps_one_model(tmp_path):
    p, said = _pipeline(tmp_path)
    s = p.session
    p.open_encoder(HEALTHY)
    p.open_encoder(str(HEALTHY.parent / ".." / "checkpoints" / HEALTHY.name), make_current=True)  # same file
    assert len(s.models) == 1 and "already open" in said["info"][-1]
    assert s.current == next(iter(s.models))
    p.open_encoder(HEALTHY, layer="features.block1")  # another layer of it is another model
    assert len(s.models) == 2
