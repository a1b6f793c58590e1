"""Embedding Explorer: see what your embedding space looks like.

Qt-free core (datasets, encoders, embedding, workspace, maps, neighbours, metrics,
fine-tuning) with a PySide6 front end in :mod:`explorer.gui`.
"""

__version__ = "0.1.0"
