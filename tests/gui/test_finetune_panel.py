"""Fine-tuning from the main window, offscreen: the dialog's defaults and checks, a linear probe
run end to end (live curves, probe map, saved checkpoint + sidecar, new model embedded, before/
after comparison), Stop keeping the partial weights, Pause holding the job still."""

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

from explorer.jobs import Progress  # noqa: E402

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


def test_dialog_defaults_and_checks(window, tmp_path):
    from explorer.gui.finetune_panel import FinetuneDialog

    w = window
    m = w.session.model(_base_id(w))
    dlg = FinetuneDialog(w, w.session.dataset, m)
    # labelled data: starts as a linear probe with lr 1e-2, saved next to the base checkpoint
    params, out = dlg.values()
    assert params.objective == "linear" and params.lr == pytest.approx(1e-2)
    assert Path(out) == w.ckpt.parent / "base_linear.pt"
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
    from explorer.errors import InputError

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
    from explorer.gui.finetune_panel import default_out_path, start_finetune

    w = window
    base = _base_id(w)
    out = default_out_path(str(w.ckpt), "linear")
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
    from explorer.gui.finetune_panel import start_finetune

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
    panel.save_btn.click()
    qtbot.waitUntil(lambda: run.new_id is not None, timeout=30000)
    assert w.wait_until_idle(60)
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
    from explorer.gui.finetune_panel import start_finetune

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


def test_pausable_wrapper_without_qt():
    """The pause wrapper on a plain generator: values and return pass through; paused, it only
    yields 'paused' progress; closing it closes the wrapped job."""
    from explorer.gui.finetune_panel import PauseGate, pausable

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
    from explorer.errors import InputError
    from explorer.finetune import FinetuneParams
    from explorer.gui.finetune_panel import start_finetune

    w = window
    base = _base_id(w)
    with pytest.raises(InputError):
        start_finetune(w, base, FinetuneParams(objective="linear"), w.ckpt)  # would overwrite the base
    with pytest.raises(InputError):
        start_finetune(w, "precomputed", FinetuneParams(objective="sigreg"), tmp_path / "p.pt")
    assert not w.runner.active()
    assert isinstance(QtWidgets.QApplication.instance(), QtWidgets.QApplication)
