"""The Analyse menu: layer sweep, truncation curve, compatibility of two models, comparison on
anchors. Each opens a tab (explorer/gui/views/) whose computation is a core job run by the
window's JobRunner and owned by the tab, so closing the tab cancels it.

Every function takes the main window; the ``*_dialog`` ones ask first, the others are the
programmatic entries (tests, sessions).
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import numpy as np
from PySide6 import QtWidgets

from explorer.core.errors import InputError
from explorer.gui.dialogs import checklist_dialog
from explorer.gui.settings import settings


# ---------------------------------------------------------------------------------- helpers
def _device() -> Optional[str]:
    dev = str(settings().value("device", "auto"))
    return None if dev == "auto" else dev


def _embedded(w) -> list:
    """Ids of the models that hold vectors of the open dataset."""
    ds = w.session.dataset
    return [mid for mid, m in w.session.models.items()
            if ds is not None and m.vectors is not None and len(m.vectors) == len(ds)]


def _known_labels(w, need: bool, what: str):
    """(labels of the labelled rows, mask of those rows) of the open dataset; None, None when
    there are no usable labels (an error when ``need``)."""
    ds = w.session.dataset
    y = None if ds is None or ds.labels is None else np.asarray(ds.labels)
    known = None if y is None else y >= 0
    if y is None or known.sum() < 10 or len(np.unique(y[known])) < 2:
        if need:
            raise InputError(f"{what} needs labels with at least two classes; attach them with File > Attach metadata.")
        return None, None
    return y[known], known


# ---------------------------------------------------------------------------------- layer sweep
def layer_sweep_dialog(w) -> None:
    from explorer.metrics.layers import default_layers

    s = w.session
    if s.dataset is None or s.current is None or s.model().encoder is None:
        return w.show_error("Open a dataset and an encoder first; the sweep embeds the dataset at the encoder's layers.")
    enc = s.model().encoder
    names = enc.layers()
    if not names:
        return w.show_error(f"{enc.name} exposes no layers (TorchScript models only give their output).")
    chosen = checklist_dialog(w, "Layer sweep", f"Layers of {enc.name} to embed {s.dataset.name} at (one pass):",
                        names, set(default_layers(enc.module)))
    if chosen:
        open_layer_sweep(w, s.current, chosen)
    elif chosen is not None:
        w.show_error("Choose at least one layer to sweep.")


def _private_copy(encoder, limit_bytes: int = 2 << 30):
    """The encoder with its own copy of the module (up to ``limit_bytes`` of weights): the
    sweep's forward hooks then never see, nor stop, a forward pass another job runs on the
    shared module at the same time (embedding the model while the sweep runs)."""
    import dataclasses

    module = encoder.module
    size = sum(p.numel() * p.element_size() for p in module.parameters()) if hasattr(module, "parameters") else 0
    if size > limit_bytes:
        return copy.copy(encoder)
    return dataclasses.replace(encoder, module=copy.deepcopy(module))


def open_layer_sweep(w, model_id: Optional[str] = None, layers: Optional[Sequence[str]] = None):
    """Sweep ``layers`` (default: the model's blocks) of ``model_id``'s encoder in a new tab."""
    from explorer.app.pipeline import can_embed
    from explorer.gui.views.layers_view import LayersView
    from explorer.metrics.layers import default_layers

    s = w.session
    m = s.model(model_id)
    if m.encoder is None:
        w.show_error(f"{m.id} is precomputed vectors: it has no layers to sweep.")
        return None
    why = can_embed(m, s.dataset)
    if why is not None:
        w.show_error(f"Cannot sweep the layers: {why}.")
        return None
    layers = list(layers) if layers else default_layers(m.encoder.module)
    enc = _private_copy(m.encoder)
    view = LayersView(w.runner)
    view.layer_clicked.connect(lambda layer, mid=m.id: w.guarded(lambda: open_layer_map(w, mid, layer)))
    w.add_tab(view, f"Layers: {m.id}")
    view.start(s.dataset, enc, layers, w.embed_params(), model_id=m.id, device=_device())
    return view


def open_layer_map(w, model_id: str, layer: str) -> str:
    """Show the map of ``model_id``'s encoder at ``layer``: the model already open for that
    layer, or a new one (embedded and mapped by the pipeline). Returns its id."""
    from explorer.encoders import set_layer

    s = w.session
    base = s.model(model_id)
    target = None
    if base.encoder is not None and (base.encoder.layer or None) == layer:
        target = base.id
    else:
        for mid, m in s.models.items():
            if (m.encoder is not None and base.encoder is not None and m.source == base.source
                    and (m.encoder.layer or None) == layer and m.encoder.pooling == base.encoder.pooling):
                target = mid
                break
    if target is None:
        enc = set_layer(copy.copy(base.encoder), layer, base.encoder.pooling)
        new = s.add_model(enc, options={**base.options, "layer": layer})
        target = new.id
        w.pipeline.embed(target)
    w.pipeline.show_model(target)
    w.center_tabs.setCurrentIndex(0)
    return target


# ---------------------------------------------------------------------------------- truncation
def truncation_dialog(w) -> None:
    ready = _embedded(w)
    if not ready:
        return w.show_error("Embed the dataset first (Compute > Embed); the curve truncates a model's vectors.")
    chosen = ready if len(ready) == 1 else checklist_dialog(
        w, "Truncation curve", "Models to draw side by side (RankMe, k-NN and probe accuracy of their first m "
        "dimensions):", ready, set(ready))
    if chosen:
        open_truncation(w, chosen)


def open_truncation(w, model_ids: Optional[Sequence[str]] = None):
    """Truncation curves of ``model_ids`` (default: every embedded model) in a new tab."""
    from explorer.gui.views.truncation_view import TruncationView

    ids = list(model_ids) if model_ids else _embedded(w)
    if not ids:
        w.show_error("Embed the dataset first (Compute > Embed).")
        return None
    y, known = _known_labels(w, need=False, what="")
    models = {mid: w.session.models[mid].vectors for mid in ids}
    note = ""
    if known is not None and not known.all():
        models = {k: v[known] for k, v in models.items()}
        note = f"the {int(known.sum()):,} labelled items"
    view = TruncationView(w.runner)
    w.add_tab(view, "Truncation: " + ", ".join(ids) if len(ids) < 3 else f"Truncation: {len(ids)} models")
    view.start(models, y, w.session.dataset.name, device=_device(), note=note)
    return view


# ---------------------------------------------------------------------------------- compatibility
def open_compatibility(w, old: Optional[str] = None, new: Optional[str] = None):
    """Compatibility of two models in a new tab (default: the current model as the old one and
    the next embedded model of the same width as the new one)."""
    from explorer.gui.views.compatibility_view import CompatibilityView

    ready = _embedded(w)
    if len(ready) < 2:
        w.show_error("Compatibility needs two embedded models of the same dataset; open and embed another encoder.")
        return None
    y, known = _known_labels(w, need=True, what="Compatibility (retrieval by label)")
    old = old or (w.session.current if w.session.current in ready else ready[0])
    if new is None:
        width = w.session.models[old].vectors.shape[1]
        same = [m for m in ready if m != old and w.session.models[m].vectors.shape[1] == width]
        new = (same or [m for m in ready if m != old])[0]
    view = CompatibilityView(w.runner)
    view.set_models({mid: w.session.models[mid].vectors[known] for mid in ready}, y, w.session.dataset.name)
    w.add_tab(view, "Compatibility")
    view.compute(old, new)
    return view


def compatibility_dialog(w) -> None:
    try:
        open_compatibility(w)
    except InputError as exc:
        w.show_error(str(exc))


# ---------------------------------------------------------------------------------- anchors
def anchors_dialog(w) -> None:
    ready = _embedded(w)
    if len(ready) < 2:
        return w.show_error("Comparing on anchors needs at least two embedded models; open and embed another encoder.")
    n, sel = len(w.session.dataset), w.selection.indices
    form = QtWidgets.QFormLayout()
    k = QtWidgets.QSpinBox()
    k.setRange(2, n)
    k.setValue(min(100, n))
    random = QtWidgets.QRadioButton("K items at random, stratified by label")
    use_sel = QtWidgets.QRadioButton(f"The current selection ({len(sel):,} items)")
    use_sel.setEnabled(len(sel) >= 2)
    (use_sel if len(sel) >= 2 else random).setChecked(True)
    form.addRow("Anchors:", random)
    form.addRow("K:", k)
    form.addRow("", use_sel)
    chosen = checklist_dialog(w, "Compare with anchors", "Models to compare:", ready, set(ready), above=form)
    if chosen is None:
        return
    w.guarded(lambda: compare_with_anchors(w, chosen, k=k.value(), use_selection=use_sel.isChecked()))


def compare_with_anchors(w, model_ids: Optional[Sequence[str]] = None, k: Optional[int] = 100,
                         use_selection: bool = False, seed: int = 0):
    """Choose the anchors (``k`` at random stratified by label, or the current selection), star
    them on every open map, and compare ``model_ids`` (default: all embedded) on their relative
    representations in a new tab."""
    from explorer.app.anchors import pick_anchors
    from explorer.gui.views.anchor_overlay import mark_anchors
    from explorer.gui.views.anchors_view import AnchorsView
    from explorer.gui.views.mapview import MapView

    ids = list(model_ids) if model_ids else _embedded(w)
    if len(ids) < 2:
        raise InputError("Comparing on anchors needs at least two embedded models.")
    ds, s = w.session.dataset, w.session
    labels = None if ds.labels is None or len(np.unique(ds.labels)) < 2 else np.asarray(ds.labels)
    idx, how = pick_anchors(len(ds), None if use_selection else min(int(k), len(ds)), labels,
                            w.selection.indices if use_selection else None, seed=seed)
    s.anchors.set(idx, len(ds), how)
    mark_anchors(w.findChildren(MapView), s.anchors)
    if not getattr(w, "_anchor_tabs_watched", False):  # maps opened later (a Compare tab) get stars too
        w._anchor_tabs_watched = True
        w.center_tabs.currentChanged.connect(lambda _i: mark_anchors(w.findChildren(MapView), s.anchors)
                                             if len(s.anchors) else None)
    view = AnchorsView(w.runner)
    view.select_anchors.connect(lambda a: w.selection.select(a, source=w))

    def cleared(a=idx):
        if np.array_equal(s.anchors.indices, a):
            s.anchors.clear()

    view.on_release = cleared
    w.add_tab(view, f"Anchors: {len(idx)}")
    view.start(ids, [s.models[m].vectors for m in ids], idx, how, ds.name)
    return view
