import os
import tempfile

# QSettings must never touch the user's real configuration during tests: point Qt's config
# location (XDG_CONFIG_HOME on Linux) at a throwaway folder before any QApplication exists.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="ee-test-config-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture
def pca_window(qtbot, tmp_path):
    """A fresh main window on its own workspace (``tmp_path/window.h5``), showing PCA maps
    (the UMAP path is covered by the engine's tests); its jobs are cancelled and joined at the end."""
    from explorer.gui.app import make_app
    from explorer.gui.mainwindow import MainWindow

    make_app()
    w = MainWindow(workspace=str(tmp_path / "window.h5"))
    qtbot.addWidget(w)
    w.method_combo.setCurrentText("pca")
    w.projection.method = "pca"
    w.show()
    yield w
    w.runner.cancel_all()
    w.runner.wait(10000)
