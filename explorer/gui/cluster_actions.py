"""Clusters and density contours in the main window: Compute > Find clusters (a job, with
progress and cancel in the Jobs panel), the names drawn on the map, a "cluster" column to colour,
filter, search and export by, and View > Density contours / Cluster names.

The clusters belong to the map they were found on (cached in the workspace under its layout
key): switching to another model or map hides the names until clusters are found there; the
"cluster" column keeps the last clusters found. Contours are on by default above
:data:`~explorer.maps.density.AUTO_CONTOURS_ABOVE` points; the user's choice is remembered.
"""

from __future__ import annotations

from typing import Optional

from PySide6 import QtGui, QtWidgets

from explorer.gui.settings import settings

COLUMN = "cluster"
CONTOURS_KEY = "map/contours"  # "auto" (default), "on" or "off"


class ClusterActions:
    """Mixin of :class:`~explorer.gui.mainwindow.MainWindow`."""

    def _build_cluster_actions(self) -> None:
        from explorer.gui.views.map_overlays import ClusterLabels, DensityContours

        self.cluster_labels = ClusterLabels(self.mapview)
        self.contours = DensityContours(self.mapview)
        self.mapview.layout_changed.connect(self._map_layout_changed)
        self.contours_action = QtGui.QAction("Density &contours", self, checkable=True)
        self.contours_action.setToolTip("Lines around the densest 90/70/50/30/10% of the points "
                                        "(on by default above 50,000 points)")
        self.contours_action.toggled.connect(self._contours_toggled)
        self.cluster_names_action = QtGui.QAction("Cluster &names", self, checkable=True, checked=True)
        self.cluster_names_action.setToolTip("The names of the clusters found (Compute > Find clusters) "
                                             "at their centres")
        self.cluster_names_action.toggled.connect(self.cluster_labels.set_enabled)
        menu = next((mm for mm in self.menuBar().findChildren(QtWidgets.QMenu) if mm.title() == "&View"), None)
        if menu is not None:
            first_sep = next((a for a in menu.actions() if a.isSeparator()), None)
            for a in (self.contours_action, self.cluster_names_action):
                menu.insertAction(first_sep, a)

    # -- finding ---------------------------------------------------------------------------
    def _shown_layout(self):
        """(model id, method, coords, layout key) of the map on screen, or None."""
        shown = getattr(self.map_panel, "_shown_key", None)
        if not shown or self.session.dataset is None:
            return None
        mid, method, _n = shown
        m = self.session.models.get(mid)
        if m is None or method not in m.layouts:
            return None
        return mid, method, m.layouts[method], (m.layout_info.get(method) or {}).get("key")

    def find_clusters(self, params=None) -> Optional[object]:
        """Find and name the clusters of the map on screen, in a worker."""
        from explorer.core.jobs import Progress
        from explorer.maps.clusters import ClusterParams, cached_clusters, name_clusters

        shown = self._shown_layout()
        if shown is None:
            self.show_error("Clusters are found on a map; open a dataset and wait for its map first.")
            return None
        mid, method, coords, lkey = shown
        ds, ws = self.session.dataset, self.session.workspace
        params = params or ClusterParams()

        def job():
            key, res = yield from cached_clusters(ws, lkey, coords, params)
            yield Progress(1, 1, "naming the clusters")
            names, how = name_clusters(res.labels, ds, None, 3, res.n_clusters)
            return key, res, names, how

        return self.submit(f"Clusters of the {method.upper()} of {mid} ({len(coords):,} points)", job,
                           lambda r: self._clusters_found(mid, method, coords, ds, r), exclusive="clusters")

    def _clusters_found(self, mid: str, method: str, coords, ds, result) -> None:
        from explorer.maps.clusters import cluster_column

        s = self.session
        m = s.models.get(mid)
        if s.dataset is not ds or m is None or m.layouts.get(method) is not coords:
            return  # the map changed while it ran
        key, res, names, how = result
        m.layout_info.setdefault(method, {})["clusters"] = {"key": key, "result": res, "names": names, "how": how}
        s.add_column(COLUMN, cluster_column(res.labels, names))  # colour choices refresh on columns_changed
        self.color_combo.setCurrentText(COLUMN)
        self._show_cluster_names()
        noise = int((res.labels < 0).sum())
        by = {"tf-idf": "top TF-IDF terms", None: "number"}.get(how.get("by"), f"majority {how.get('by')}")
        sampled = f"; HDBSCAN ran on a {res.info['sampled']:,}-point sample" if res.info.get("sampled") else ""
        self.show_info(f"{res.n_clusters} clusters ({f'{noise:,} noise points' if noise else 'no noise'}), named by {by}{sampled}; "
                       f"colour, filter or export by the “{COLUMN}” column.")

    def _show_cluster_names(self) -> None:
        shown = self._shown_layout()
        found = None
        if shown is not None:
            mid, method, coords, _ = shown
            found = (self.session.models[mid].layout_info.get(method) or {}).get("clusters")
            if found is not None and not len(found["result"].labels) == len(coords) == self.mapview.n:
                found = None
        if found is None or self.mapview.layout_dims != 2:
            self.cluster_labels.clear()
            return
        r = found["result"]
        self.cluster_labels.set_clusters(r.centres, found["names"], r.sizes, r.spread)

    # -- contours --------------------------------------------------------------------------
    def contours_wanted(self) -> bool:
        from explorer.maps.density import AUTO_CONTOURS_ABOVE

        choice = str(settings().value(CONTOURS_KEY, "auto"))
        if choice in ("on", "off"):
            return choice == "on"
        return self.mapview.n > AUTO_CONTOURS_ABOVE

    def _contours_toggled(self, on: bool) -> None:
        if getattr(self, "_syncing_contours", False):
            return
        settings().setValue(CONTOURS_KEY, "on" if on else "off")
        self.contours.set_enabled(on)

    def _map_layout_changed(self) -> None:
        want = self.contours_wanted()
        self._syncing_contours = True
        try:
            self.contours_action.setChecked(want)
        finally:
            self._syncing_contours = False
        self.contours.set_enabled(want)
        self._show_cluster_names()
