"""Registries for formats: dataset readers, encoder formats, architectures.

A format registers itself with a decorator; the open-file dialog and the CLI both ask the
registry what can read a path. Third parties add theirs through the entry-point groups
``embedding_explorer.datasets`` and ``embedding_explorer.encoders`` (each entry point names a
module to import; importing it registers its formats).

    DATASETS = Registry("dataset")

    @DATASETS.register("npy", label="NumPy array", extensions=(".npy",), priority=10)
    def open_npy(path, **options): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from explorer.core.errors import InputError


@dataclass
class Entry:
    name: str
    func: Callable[..., Any]
    label: str
    extensions: tuple[str, ...] = ()
    priority: int = 0
    sniff: Optional[Callable[[Path], bool]] = None
    directory: bool = False
    description: str = ""
    extra: dict = field(default_factory=dict)

    def accepts(self, path: Path) -> bool:
        if self.directory != path.is_dir():
            return False
        if self.extensions and not any(path.name.lower().endswith(e) for e in self.extensions):
            return False
        if self.sniff is not None:
            try:
                return bool(self.sniff(path))
            except Exception:  # a sniffer must never break format discovery
                return False
        return bool(self.extensions) or self.directory


class Registry:
    def __init__(self, kind: str, entry_point_group: Optional[str] = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False

    def register(self, name: str, *, label: str = "", extensions: Iterable[str] = (),
                 priority: int = 0, sniff: Optional[Callable[[Path], bool]] = None,
                 directory: bool = False, description: str = "", **extra: Any):
        def deco(func: Callable[..., Any]) -> Callable[..., Any]:
            self._entries[name] = Entry(name, func, label or name,
                                        tuple(e.lower() for e in extensions), priority, sniff,
                                        directory, description or (func.__doc__ or "").strip().split("\n")[0],
                                        dict(extra))
            return func
        return deco

    def _load_plugins(self) -> None:
        if self._plugins_loaded or not self.entry_point_group:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not break the app
                import warnings

                warnings.warn(f"Could not load {self.kind} plugin {ep.name!r}: {exc}")

    def entries(self) -> list[Entry]:
        self._load_plugins()
        return sorted(self._entries.values(), key=lambda e: (-e.priority, e.name))

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def get(self, name: str) -> Entry:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise InputError(f"Unknown {self.kind} format {name!r}; known formats: {known}.") from None

    def find(self, path: str | Path) -> list[Entry]:
        """Entries that can read ``path``, best first."""
        p = Path(path)
        return [e for e in self.entries() if e.accepts(p)]

    def for_path(self, path: str | Path, fmt: Optional[str] = None) -> Entry:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder.")
        if fmt:
            return self.get(fmt)
        found = self.find(p)
        if not found:
            raise InputError(f"{p}: not a {self.kind} format Embedding Explorer can read "
                             f"(known: {', '.join(self.names())}).")
        return found[0]
