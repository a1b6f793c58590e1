"""Errors a user sees: one plain sentence saying what went wrong and where.

Core code raises :class:`ExplorerError` (or a subclass) for anything caused by the user's
input or environment. The CLI prints ``str(err)`` on one line and exits with code 2; the GUI
shows it in a message with the traceback behind a "details" button. Anything else is a bug.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """A problem the user can act on. ``str(err)`` is one plain sentence."""


class InputError(ExplorerError):
    """A file, folder or argument that cannot be used as given."""


class CheckpointError(InputError):
    """A checkpoint that cannot be loaded or does not fit its architecture."""


class TrustRequired(CheckpointError):
    """A checkpoint that holds pickled Python objects: it loads only when the user trusts it
    (``--trust``, or a confirmation in the app naming the file)."""


class WorkspaceError(ExplorerError):
    """A workspace that cannot be read or written (wrong file, newer version, disk full)."""


class Cancelled(ExplorerError):
    """A job stopped because the user cancelled it. Nothing it would have written was kept."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)


class ExplorerWarning(UserWarning):
    """Something the user should know that does not stop the work (a read-only workspace whose
    results are not cached, all-zero vectors under the cosine metric...). ``str(w)`` is one
    plain sentence; the CLI prints it on one line of stderr."""


def warn(message: str) -> None:
    """Emit ``message`` as an :class:`ExplorerWarning` (one sentence)."""
    import warnings

    warnings.warn(message, ExplorerWarning, stacklevel=2)
