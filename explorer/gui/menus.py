"""The window's menus and toolbar as one table: (menu, text, slot, shortcut, tip, icon,
on the toolbar). A slot is the name of a MainWindow method, or a callable of the window."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from explorer.gui import analysis_actions as analysis
from explorer.gui.settings import icon

SEPARATOR = None
MENUS = {
    "&File": [
        ("Open &dataset…", "open_dataset_dialog", "Ctrl+O", "Open an image folder, array, HDF5, text or vector file", "open", True),
        ("Open &encoder…", "open_encoder_dialog", "Ctrl+E", "Open a checkpoint (TorchScript, state_dict, safetensors, Lightning)", "open", True),
        ("Add &layer of this encoder…", "add_layer_dialog", "Ctrl+L",
         "Embed with another layer of the current encoder (e.g. backbone vs projector) to compare them", None, False),
        ("&Remove current model", lambda w: w.remove_model(w.session.current), None,
         "Take the current model out of the session (its cached embeddings stay in the workspace)", None, False),
        ("Attach &metadata…", "attach_metadata_dialog", None, "Join a CSV/TSV/JSONL table (by row order or id column) or a .npy of labels to the dataset", None, False),
        SEPARATOR,
        ("Open &session…", "open_session_dialog", "Ctrl+Shift+O", "", None, False),
        ("&Save session…", "save_session_dialog", "Ctrl+S", "Save the workspace and the open views", None, False),
        SEPARATOR,
        ("Export &selection…", "export_selection_dialog", "Ctrl+Shift+E", "CSV of ids, labels and metadata; vectors as .npy or .h5", "export", True),
        ("Export map &image…", "export_map_dialog", "Ctrl+Shift+P", "PNG or SVG at publication resolution", None, False),
        ("Copy &Python snippet", "copy_snippet", "Ctrl+Shift+C", "Copy code that reproduces the current map from the workspace", None, False),
        SEPARATOR,
        "recent",
        SEPARATOR,
        ("Se&ttings…", "settings_dialog", "Ctrl+,", "", None, False),
        ("&Quit", "close", "Ctrl+Q", "", None, False),
        ("&Find similar to a file or text…", "find_similar_dialog", "Ctrl+Shift+F",
         "Embed a new image or sentence with the current encoder and list its nearest items", None, False),
    ],
    "&Compute": [
        "toolbar-separator",
        ("&Embed", "embed_current", "Ctrl+Return", "Embed the dataset with the current model", "embed", True),
        ("Embed &all models", "embed_all", "Ctrl+Shift+Return", "", None, False),
        ("&Recompute map", lambda w: w.apply_projection(w.projpanel.settings()), "Ctrl+R",
         "Re-run the map with the settings panel's values", "map", True),
        ("&Diagnose collapse", "diagnose_current", "Ctrl+D", "Collapse diagnostics of the current model", "diagnose", True),
        ("Find &clusters", "find_clusters", "Ctrl+Shift+L",
         "HDBSCAN clusters of the map on screen, named by majority label or top TF-IDF terms", None, False),
        ("Cancel all jobs", lambda w: w.runner.cancel_all(), "Ctrl+.", "Cancel every running job", "cancel", False),
    ],
    "Com&pare": [
        ("Compare models &side by side…", "compare_dialog", "Ctrl+K",
         "2-4 models in linked, aligned maps with neighbourhood overlap and CKA", "compare", True),
        ("Open a checkpoint &run (timeline)…", "timeline_dialog", "Ctrl+T",
         "Embed every checkpoint of a training run on a probe set: metric curves and aligned maps", None, False),
        ("&Fine-tune…", "finetune_dialog", "Ctrl+F",
         "Linear probe or fine-tune the current encoder, live, then compare before/after", "finetune", True),
    ],
    "&Analyse": [  # explorer/gui/analysis_actions.py
        ("&Layer sweep…", lambda w: analysis.layer_sweep_dialog(w), None,
         "Metrics of every layer of the current encoder against depth; click a layer to open its map", None, False),
        ("&Truncation curve…", lambda w: analysis.truncation_dialog(w), None,
         "RankMe, k-NN and probe accuracy of the first m dimensions (Matryoshka)", None, False),
        ("&Compatibility of two models…", lambda w: analysis.compatibility_dialog(w), None,
         "New queries against the old model's gallery: can a new checkpoint replace an old one without re-indexing?", None, False),
        ("Compare with &anchors…", lambda w: analysis.anchors_dialog(w), None,
         "Relative representations: models of any width compared through the same anchor items", None, False),
    ],
    "&View": [
        ("&Reset view", lambda w: w.mapview.reset_view(), "R", "Show all points", "reset_view", True),
        ("&Zoom to selection", lambda w: w.mapview.zoom_to_selection(), "Z", "", None, False),
        ("Clear selection", lambda w: w.selection.clear(source=w), "Esc", "", None, False),
        ("Select &all", lambda w: w.selection.select(np.arange(w.selection.n), source=w), "Ctrl+A", "", None, False),
        SEPARATOR,
        ("&Tag selection…", "tag_selection_dialog", "Ctrl+Shift+T",
         "Tag the selected items with a name: a 'tags' column to colour, filter (tag:name), search and export", None, False),
        ("&Untag selection…", "untag_selection_dialog", None, "Remove the selected items from a tag", None, False),
        ("Clear chart &brushes", lambda w: w.charts.crossfilter.clear(), None,
         "Clear every brush of the Charts dock", None, False),
        SEPARATOR,
        "docks",
    ],
    "Book&marks": [
        ("&Save view…", "add_bookmark_dialog", "Ctrl+B",
         "Bookmark the model, map, camera, colouring, selection, search and charts by name", None, False),
        ("&Next bookmark", "next_bookmark", "Ctrl+]", "", None, False),
        ("&Previous bookmark", "previous_bookmark", "Ctrl+[", "", None, False),
        ("Show &bookmarks", lambda w: (w.bookmarks_dock.show(), w.bookmarks_dock.raise_()), None, "", None, False),
    ],
    "&Help": [("&About", "about", None, "", None, False)],
}


def build_menus(window: QtWidgets.QMainWindow) -> dict:
    """Create the menu bar and toolbar of ``window`` from :data:`MENUS`; returns the actions by
    slot name, and ``window.recent_menu`` is the File > Recent submenu."""
    mb = window.menuBar()
    tb = window.addToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setIconSize(QtCore.QSize(20, 20))
    tb.setToolButtonStyle(QtCore.Qt.ToolButtonTextBesideIcon)
    actions = {}
    for title, entries in MENUS.items():
        menu = mb.addMenu(title)
        for e in entries:
            if e is SEPARATOR:
                menu.addSeparator()
            elif e == "toolbar-separator":
                tb.addSeparator()
            elif e == "recent":
                window.recent_menu = menu.addMenu("Recent")
            elif e == "docks":
                for d in window.findChildren(QtWidgets.QDockWidget):
                    menu.addAction(d.toggleViewAction())
            else:
                text, slot, shortcut, tip, icon_name, on_toolbar = e
                a = QtGui.QAction(text, window)
                if icon_name:
                    a.setIcon(icon(icon_name))
                if shortcut:
                    a.setShortcut(QtGui.QKeySequence(shortcut))
                a.setToolTip(tip or text)
                a.setStatusTip(tip or text)
                fn = getattr(window, slot) if isinstance(slot, str) else (lambda _=False, f=slot: f(window))
                a.triggered.connect(fn)
                menu.addAction(a)
                if on_toolbar:
                    tb.addAction(a)
                if isinstance(slot, str):
                    actions[slot] = a
    return actions
