"""Fine-tuning from the main window, offscreen: the dialog's defaults and checks (where the
weights go by default, units, Browse…), a linear probe run end to end (live curves, probe map,
saved checkpoint + sidecar, new model embedded, before/after comparison), Stop keeping the
partial weights (and saying so in the jobs panel), Pause holding the job still, the charts with
one point and the probe map's view."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
torch = pytest.importorskip("torch")
from PySide6 import QtWidgets  # noqa: E402

from explorer.core.jobs import Progress  # noqa: E402

N, D, K = 300, 16, 3
ARCH_KWARGS = {"in_dim": D, "hidden": 32, "out_dim": 8, "layers": 1}


def _data(tmp_path: Path) -> tuple[Path, Path]:
    """Three Gaussian blobs in 16-d (labels 0..2) and an MLP checkpoint with its sidecar."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), N // K)
    centres = rng.normal(0, 3, (K, D))
    X = (centres[labels] + rng.normal(0, 1, (N, D))).astype(np.float32)
    data = tmp_path / "blobs.npz"
    np.savez(data, vectors=X, labels=labels.astype(np.int64))
    from explorer.encoders.archs import ARCHITECTURES

    torch.manual_seed(0)
    net = ARCHITECTURES.get("mlp").func(**ARCH_KWARGS)
    ckpt = tmp_path / "base.pt"
    torch.save(net.state_dict(), ckpt)
    Path(str(ckpt) + ".json").write_text(json.dumps({"arch": "mlp", "arch_kwargs": ARCH_KWARGS}))
    return data, ckpt


@pytest.fixture
def window(qtbot, tmp_path):
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    w = MainWindow(workspace=str(tmp_path / "ws.h5"))
    qtbot.addWidget(w)
    w.method_combo.setCurrentText("pca")
    w.projection.method = "pca"
    data, ckpt = _data(tmp_path)
    w.open_dataset(str(data))
    assert w.wait_until_idle(60)
    w.open_encoder(str(ckpt))
    assert w.wait_until_idle(60)
    w.ckpt = ckpt
    yield w
    w.runner.cancel_all()
    w.runner.wait(10000)


def _base_id(w) -> str:
    return next(mid for mid, m in w.session.models.items() if m.encoder is not None)


def _forget_save_folder() -> None:
    from explorer.gui.views.finetune_panel import SAVE_FOLDER_KEY
    from explorer.gui.settings import settings

    settings().remove(SAVE_FOLDER_KEY)


def _job_row(w, handle):
    return next(r for r in w.jobs_panel.job_rows() if r.handle is handle)


def test_dialog_defaults_and_checks(window, tmp_path):
    from explorer.gui.views.finetune_panel import FinetuneDialog

    w = window
    _forget_save_folder()
    m = w.session.model(_base_id(w))
    dlg = FinetuneDialog(w, w.session.dataset, m)
    # labelled data: starts as a linear probe with lr 1e-2, saved in checkpoints/ next to the
    # open workspace (tmp_path/ws.h5)
    params, out = dlg.values()
    assert params.objective == "linear" and params.lr == pytest.approx(1e-2)
    assert Path(out) == tmp_path / "checkpoints" / "base_linear.pt"
    dlg.set_values(mode="full")
    params, out = dlg.values()
    assert params.objective == "ce" and params.lr == pytest.approx(1e-3) and params.last_n_blocks is None
    dlg.set_values(objective="sigreg", mode="last", last_n_blocks=1, epochs=3, lambda_=0.1)
    params, out = dlg.values()
    assert (params.objective, params.last_n_blocks, params.epochs, params.lambda_) == ("sigreg", 1, 3, 0.1)
    assert Path(out).name == "base_sigreg.pt"
    assert dlg.lambda_.isEnabled() and not dlg.temperature.isEnabled()
    dlg.set_values(objective="simclr")
    assert dlg.temperature.isEnabled() and not dlg.lambda_.isEnabled()
    for wdg in (dlg.mode, dlg.objective, dlg.epochs, dlg.lr, dlg.batch, dlg.temperature, dlg.lambda_,
                dlg.device, dlg.amp, dlg.probe_every, dlg.out, dlg.blocks):
        assert wdg.toolTip(), wdg
    # the base checkpoint is never the output
    from explorer.core.errors import InputError

    dlg.set_values(out=str(w.ckpt))
    with pytest.raises(InputError):
        dlg.values()
    dlg.set_values(out=str(tmp_path / "x.txt"))
    with pytest.raises(InputError):
        dlg.values()
    # without labels, the supervised objectives are greyed out and the default is SIGReg
    ds = w.session.dataset
    unlabelled = type("DS", (), {"labels": None, "name": "u", "__len__": lambda self: 10})()
    d2 = FinetuneDialog(w, unlabelled, m)
    assert d2.values()[0].objective == "sigreg"
    lin = d2.objective.findData("linear")
    assert not d2.objective.model().item(lin).isEnabled()
    assert ds.labels is not None


def test_linear_probe_end_to_end(window, qtbot):
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import default_out_path, default_save_folder, start_finetune

    w = window
    base = _base_id(w)
    out = default_out_path(str(w.ckpt), "linear", default_save_folder(w.session.workspace_path))
    assert out == w.ckpt.parent / "checkpoints" / "base_linear.pt" and not out.parent.exists()
    params = FinetuneParams(objective="linear", epochs=2, lr=1e-2, batch_size=64, probe_every=2,
                            probe_size=200, device="cpu")
    panel = start_finetune(w, base, params, out)
    run = panel.run
    qtbot.waitUntil(lambda: run.compare_view is not None, timeout=60000)
    assert w.wait_until_idle(60)
    # the live panel: the loss curve and the probe metrics got points, the map got coordinates
    xs, ys = panel.loss_curve.getData()
    assert xs is not None and len(xs) == run.result.steps >= 2 and np.isfinite(ys).all()
    assert [r["loss"] for r in panel.history] == [r["loss"] for r in run.result.history]
    assert len(panel.probes) >= 2 and "rankme" in panel.probes[-1]
    assert panel.map_coords is not None and panel.map_coords.shape == (200, 2)
    assert panel.map.n == 200 and panel.map_frames >= 1
    # probe map coloured by the probe items' labels
    assert len(panel.map.legend_entries) == K
    # saved: weights-only state dict + sidecar + head; both reload safely
    assert run.saved_path == out and out.exists()
    sd = torch.load(out, weights_only=True)
    ref = w.session.model(base).encoder.module.state_dict()
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in sd)  # encoder frozen
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["objective"] == "linear" and side["base_checkpoint"] == str(w.ckpt)
    assert side["steps"] == run.result.steps and side["arch"] == "mlp" and side["arch_kwargs"] == ARCH_KWARGS
    assert side["hyperparameters"]["lr"] == pytest.approx(1e-2) and "probe_accuracy" in side["metrics"]
    head = torch.load(out.with_name(out.stem + ".head.pt"), weights_only=True)
    assert head["weight"].shape == (K, ARCH_KWARGS["out_dim"])
    # the new model: the probe's logits, embedded; equal to head(features) computed here
    new = w.session.models[run.new_id]
    assert new.vectors is not None and new.vectors.shape == (N, K)
    Zb = w.session.model(base).vectors.astype(np.float64)
    logits = Zb @ head["weight"].double().numpy().T + head["bias"].double().numpy()
    np.testing.assert_allclose(new.vectors, logits, rtol=1e-3, atol=1e-3)
    # held-out accuracy reported in the sidecar matches the saved head on the held-out split
    te = run.result.test_indices
    y = w.session.dataset.labels
    acc = float((logits[te].argmax(1) == y[te]).mean())
    assert side["metrics"]["probe_accuracy"] == pytest.approx(acc, abs=1e-6)
    # the map can be coloured by whether the probe is right, item by item
    col = w.session.dataset.metadata[f"probe correct ({run.new_id})"]
    np.testing.assert_array_equal(col == "correct", logits.argmax(1) == y)
    assert w.color_combo.findText(f"probe correct ({run.new_id})") >= 0
    # the before/after comparison opened with both models
    assert run.compare_view.names == [base, run.new_id]
    assert w.message.level != "error" or not w.message.text(), w.message.text()


def test_stop_keeps_partial_result_and_app_stays_usable(window, qtbot, tmp_path):
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import start_finetune

    w = window
    base = _base_id(w)
    out = tmp_path / "stopped.pt"
    params = FinetuneParams(objective="sigreg", epochs=200, batch_size=32, probe_every=5, probe_size=100,
                            device="cpu", projector_dim=0)
    panel = start_finetune(w, base, params, out)
    run = panel.run
    qtbot.waitUntil(lambda: run.result.steps >= 6 and len(panel.history) >= 3, timeout=30000)
    panel.stop_btn.click()
    qtbot.waitUntil(lambda: panel.state == "stopped", timeout=30000)
    steps = run.result.steps
    assert 6 <= steps < run.result.total_steps and run.result.stopped_reason == "cancelled"
    assert run.result.module is not None and panel.save_row.isVisibleTo(panel)
    assert not out.exists()  # nothing written until asked
    # the jobs panel says the run stopped and kept its weights, not "cancelled"
    row = _job_row(w, run.handle)
    assert run.handle.state == "stopped" and row.bar.format() == "stopped (weights kept)"
    assert row.cancel.text() == "Stop" and not row.cancel.isEnabled()
    panel.save_btn.click()
    qtbot.waitUntil(lambda: run.new_id is not None, timeout=30000)
    assert w.wait_until_idle(60)
    w.jobs_panel._tick()
    assert row.bar.format() == "stopped (weights saved)"
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["steps"] == steps and side["stopped_reason"] == "cancelled" and side["finished"] is False
    sd = torch.load(out, weights_only=True)
    trained = run.result.module.state_dict()
    assert all(torch.equal(sd[k], trained[k]) for k in sd)
    assert not all(torch.equal(sd[k], w.session.model(base).encoder.module.state_dict()[k]) for k in sd)
    assert w.session.models[run.new_id].vectors is not None
    # the app is still usable: another job runs and finishes
    w.embed(base)
    assert w.wait_until_idle(60)
    assert not w.runner.active()


def test_pause_holds_progress_until_resume(window, qtbot, tmp_path):
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import start_finetune

    w = window
    params = FinetuneParams(objective="vicreg", epochs=200, batch_size=32, probe_every=0, probe_size=64,
                            device="cpu", projector_dim=0)
    panel = start_finetune(w, _base_id(w), params, tmp_path / "paused.pt")
    run = panel.run
    qtbot.waitUntil(lambda: run.result.steps >= 2, timeout=30000)
    panel.pause_btn.click()
    assert run.gate.paused and panel.pause_btn.text() == "Resume"
    qtbot.wait(400)  # the step in flight finishes
    held = run.result.steps
    qtbot.wait(700)
    assert run.result.steps == held and run.running
    panel.pause_btn.click()
    qtbot.waitUntil(lambda: run.result.steps > held + 2, timeout=30000)
    # stopping while paused works too
    panel.pause_btn.click()
    qtbot.wait(200)
    panel.stop_btn.click()
    qtbot.waitUntil(lambda: panel.state == "stopped", timeout=30000)
    assert w.wait_until_idle(30)
    panel.discard_btn.click()
    assert panel.state == "discarded" and run.result.module is None
    w.jobs_panel._tick()
    assert _job_row(w, run.handle).bar.format() == "stopped (weights discarded)"


def test_pausable_wrapper_without_qt():
    """The pause wrapper on a plain generator: values and return pass through; paused, it only
    yields 'paused' progress; closing it closes the wrapped job."""
    from explorer.core.jobs import PauseGate, pausable

    closed = []

    def job():
        try:
            for i in range(3):
                yield Progress(i, 3, f"step {i}")
            return "done"
        finally:
            closed.append(True)

    gate = PauseGate()
    g = pausable(job(), gate, poll_s=0.01)
    assert next(g).message == "step 0"
    gate.pause()
    assert next(g).message == "paused" and next(g).message == "paused"
    threading.Timer(0.05, gate.resume).start()
    msgs = []
    t0 = time.monotonic()
    while True:
        try:
            msgs.append(next(g).message)
        except StopIteration as stop:
            assert stop.value == "done"
            break
    assert msgs[-2:] == ["step 1", "step 2"] and set(msgs[:-2]) <= {"paused"}
    assert time.monotonic() - t0 >= 0.04 and closed == [True]
    g2 = pausable(job(), PauseGate())
    next(g2)
    g2.close()
    assert closed == [True, True]


def test_start_refuses_bad_requests(window, tmp_path):
    from explorer.core.errors import InputError
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import start_finetune

    w = window
    base = _base_id(w)
    with pytest.raises(InputError):
        start_finetune(w, base, FinetuneParams(objective="linear"), w.ckpt)  # would overwrite the base
    with pytest.raises(InputError):
        start_finetune(w, "precomputed", FinetuneParams(objective="sigreg"), tmp_path / "p.pt")
    assert not w.runner.active()
    assert isinstance(QtWidgets.QApplication.instance(), QtWidgets.QApplication)


def test_an_encoder_that_cannot_take_the_items_is_refused_in_one_sentence(window, tmp_path):
    """Found by the long random walk: an image CNN fine-tuned on a vector dataset reached conv2d
    and failed with PyTorch's RuntimeError; it is now refused before any job starts, as the CLI does."""
    from explorer.core.errors import InputError
    from explorer.finetune import FinetuneParams
    from explorer.gui.views.finetune_panel import start_finetune
    from explorer.core.resources import sample_data_dir

    healthy = sample_data_dir() / "checkpoints" / "healthy.pt"
    if not healthy.exists():
        pytest.skip("sample checkpoints not generated")
    w = window
    w.open_encoder(str(healthy))
    assert w.wait_until_idle(60)
    mid = next(m for m in w.session.models if m.startswith("healthy"))
    with pytest.raises(InputError) as err:
        start_finetune(w, mid, FinetuneParams(objective="linear"), tmp_path / "h.pt")
    assert "\n" not in str(err.value) and "healthy" in str(err.value)
    assert not w.runner.active()


# ------------------------------------------------------------------ where the weights go

def test_default_folder_is_documents_without_a_workspace_and_never_the_package(qtbot, tmp_path, monkeypatch):
    """No workspace of the user's (none, or the app's scratch one in its cache): the documents
    folder, which follows HOME and XDG_DOCUMENTS_DIR; a base checkpoint from the bundled
    sample data or a remembered folder inside the package never pulls the output there."""
    from types import SimpleNamespace

    import explorer
    from explorer.gui.app import make_app
    from explorer.gui.views.finetune_panel import SAVE_FOLDER_KEY, FinetuneDialog, default_save_folder
    from explorer.gui.settings import settings
    from explorer.core.resources import cache_dir, sample_data_dir

    make_app()
    _forget_save_folder()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOCUMENTS_DIR", raising=False)
    package, samples = Path(explorer.__file__).parent.resolve(), sample_data_dir().resolve()
    model = SimpleNamespace(id="healthy", source=str(samples / "checkpoints" / "healthy.pt"), encoder=None)
    want = home / "Documents" / "Embedding Explorer" / "checkpoints"
    for ws in (None, cache_dir() / "workspace.h5", samples / "demo.h5"):
        dlg = FinetuneDialog(None, None, model, workspace=ws)
        qtbot.addWidget(dlg)
        out = Path(dlg.values()[1])
        assert out == want / "healthy_sigreg.pt", ws
        for root in (package, samples):
            assert root not in out.resolve().parents
    assert not want.exists()  # proposing a folder creates nothing
    settings().setValue(SAVE_FOLDER_KEY, str(package / "gui"))  # never honoured
    assert default_save_folder(None, str(package / "gui")) == want
    dlg = FinetuneDialog(None, None, model)
    qtbot.addWidget(dlg)
    assert Path(dlg.values()[1]).parent == want
    _forget_save_folder()
    # the XDG user-dirs variable moves the documents folder
    monkeypatch.setenv("XDG_DOCUMENTS_DIR", str(tmp_path / "Dokumente"))
    assert default_save_folder() == tmp_path / "Dokumente" / "Embedding Explorer" / "checkpoints"
    assert default_save_folder(tmp_path / "proj" / "run.h5") == tmp_path / "proj" / "checkpoints"


def test_dialog_remembers_the_folder_the_user_chose(window, tmp_path):
    from explorer.gui.views.finetune_panel import FinetuneDialog

    w = window
    _forget_save_folder()
    m = w.session.model(_base_id(w))

    def default_out() -> Path:
        dlg = FinetuneDialog(w, w.session.dataset, m)
        return Path(dlg.values()[1])

    assert default_out().parent == tmp_path / "checkpoints"
    dlg = FinetuneDialog(w, w.session.dataset, m)
    dlg.set_values(out=str(tmp_path / "mine" / "a.pt"))
    dlg._accept()
    assert dlg.result() == QtWidgets.QDialog.Accepted
    assert default_out() == tmp_path / "mine" / "base_linear.pt"
    # choosing the workspace folder again forgets the choice
    dlg = FinetuneDialog(w, w.session.dataset, m)
    dlg.set_values(out=str(tmp_path / "checkpoints" / "b.pt"))
    dlg._accept()
    (tmp_path / "elsewhere").mkdir()
    assert default_out().parent == tmp_path / "checkpoints"


def test_browse_opens_in_the_save_folder(window, tmp_path, monkeypatch):
    from explorer.gui.views.finetune_panel import FinetuneDialog

    w = window
    _forget_save_folder()
    dlg = FinetuneDialog(w, w.session.dataset, w.session.model(_base_id(w)))
    assert dlg.browse.text() == "Browse…" and dlg.browse.toolTip()
    calls = []

    def fake_save_dialog(parent, caption, start, filt):
        calls.append(Path(start))
        return str(tmp_path / "picked.pt"), filt

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", staticmethod(fake_save_dialog))
    dlg.browse.click()
    (start,) = calls
    assert start == tmp_path / "checkpoints" / "base_linear.pt" and start.parent.is_dir()
    assert Path(dlg.values()[1]) == tmp_path / "picked.pt"


def test_number_fields_show_their_units(window, qtbot):
    from explorer.gui.views.finetune_panel import FinetuneDialog

    w = window
    dlg = FinetuneDialog(w, w.session.dataset, w.session.model(_base_id(w)))
    qtbot.addWidget(dlg)
    assert dlg.probe_every.text() == "20 steps"
    assert dlg.epochs.text() == "5 epochs" and dlg.batch.text() == "256 items"
    assert dlg.blocks.text() == "1 block"
    dlg.probe_every.setValue(1)
    assert dlg.probe_every.text() == "1 step"
    dlg.probe_every.setValue(0)
    assert dlg.probe_every.text() == "only at the end"
    # typing a number keeps working while the unit follows it
    dlg.show()
    dlg.epochs.setFocus()
    dlg.epochs.selectAll()
    qtbot.keyClicks(dlg.epochs, "12")
    assert dlg.epochs.value() == 12 and dlg.epochs.text() == "12 epochs"
    assert dlg.values()[0].epochs == 12


# ------------------------------------------------------------------ the live panel's charts and map

def _progress(step: int, Z=None, **metrics) -> Progress:
    part = {"step": step, "epoch": 1, "loss": 1.0 / (1 + step), "lr": 1e-3, **metrics}
    if Z is not None:
        part["probe_embeddings"] = Z
    return Progress(step, 100, f"step {step}", part)


def test_one_point_charts_have_a_whole_step_range_and_no_si_prefix(qtbot):
    import pyqtgraph as pg

    from explorer.gui.app import make_app
    from explorer.gui.views.finetune_panel import FinetunePanel

    make_app()
    panel = FinetunePanel("one point")
    qtbot.addWidget(panel)
    panel.resize(1200, 500)
    panel.show()
    panel.on_progress(_progress(7, rankme=3.0, std_l2_normalized=0.2, sigreg=0.5, knn_accuracy=0.6))
    panel._redraw()
    qtbot.wait(50)
    plots = (panel.loss_plot, panel.lr_plot, panel.rankme_plot, panel.std_plot, panel.sigreg_plot, panel.acc_plot)
    for plot in plots:
        (lo, hi), _ = plot.getViewBox().viewRange()
        assert (lo, hi) == pytest.approx((6.0, 8.0)), plot
    # the step axis never scales by an SI prefix; pyqtgraph's default axis would, on this range
    ref = pg.PlotWidget()
    qtbot.addWidget(ref)
    ref.setLabel("bottom", "step")
    ref.setXRange(-0.5, 0.5, padding=0)
    assert "(x0.001)" in ref.getAxis("bottom").labelString()
    for plot in plots:
        plot.setXRange(-0.5, 0.5, padding=0)
        axis = plot.getAxis("bottom")
        assert "step" in axis.labelString() and "(x" not in axis.labelString() and axis.autoSIPrefixScale == 1.0
    # more points: the range follows the data again
    panel.on_progress(_progress(8, rankme=3.5))
    panel.on_progress(_progress(40, rankme=4.0))
    panel._redraw()
    qtbot.wait(50)  # pyqtgraph applies auto-range when it paints
    for plot in (panel.loss_plot, panel.rankme_plot):
        (lo, hi), _ = plot.getViewBox().viewRange()
        assert lo <= 7 and hi >= 40 and hi - lo < 60, plot


def test_probe_map_view_contains_every_point_after_each_update(qtbot):
    from explorer.gui.app import make_app
    from explorer.gui.views.finetune_panel import FinetunePanel

    make_app()
    panel = FinetunePanel("map")
    panel.resize(1200, 500)
    qtbot.addWidget(panel)
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(120, 6))

    def inside() -> bool:
        (x0, x1), (y0, y1) = panel.map.vb.viewRange()
        c = panel.map_coords.astype(np.float64)
        return bool((c[:, 0] >= x0).all() and (c[:, 0] <= x1).all() and (c[:, 1] >= y0).all() and (c[:, 1] <= y1).all())

    panel.on_progress(_progress(0, Z=Z, rankme=2.0))
    panel._redraw()
    assert panel.map_frames == 1 and inside()
    first = panel.map.vb.viewRange()
    Z2 = Z.copy()
    Z2[:3] *= 40  # three items fly off: the normalised picture changes scale
    panel.on_progress(_progress(5, Z=Z2, rankme=2.0))
    panel._redraw()
    assert panel.map_frames == 2 and inside()
    c = panel.map_coords
    (x0, x1), (y0, y1) = first
    assert ((c[:, 0] < x0) | (c[:, 0] > x1) | (c[:, 1] < y0) | (c[:, 1] > y1)).any()  # outside the old view


def test_panel_fits_the_tab_of_a_1280x800_window(qtbot):
    """In a 1280x800 window the fine-tune tab is about 590x520 and sits in a scroll area that
    sizes it by its minimum width and its height for that width: both must fit (the charts
    then go two abreast), so Stop and the lower charts stay in sight without scrolling."""
    from explorer.gui.app import make_app
    from explorer.gui.views.finetune_panel import FinetunePanel

    make_app()
    panel = FinetunePanel("base → base_sigreg.pt  (sigreg, 200 epochs)")
    qtbot.addWidget(panel)
    panel.set_state("stopped", "Stopped after 60 steps", 30, 60, True)  # the save row shows too
    panel.resize(590, 520)
    panel.show()
    qtbot.wait(20)
    assert panel.minimumSizeHint().width() <= 590
    assert panel.heightForWidth(590) <= 520
    for btn in (panel.stop_btn, panel.save_btn, panel.discard_btn):
        assert btn.mapTo(panel, btn.rect().topRight()).x() <= 590, btn.text()
    for chart in panel.charts:
        assert chart.isVisibleTo(panel) and chart.mapTo(panel, chart.rect().bottomRight()).y() <= 520
