import os
import tempfile

# QSettings must never touch the user's real configuration during tests: point Qt's config
# location (XDG_CONFIG_HOME on Linux) at a throwaway folder before any QApplication exists.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="ee-test-config-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
