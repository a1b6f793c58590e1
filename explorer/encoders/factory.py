"""Architectures for weights-only checkpoints: a built-in one by name
(:data:`explorer.encoders.archs.ARCHITECTURES`) or the user's own factory function given as
``path/to/file.py:function`` (or ``package.module:function``).

Importing the user's file runs the user's own code, which is what they asked for; a checkpoint
file is never executed. A factory may carry its preprocessing as a ``preprocess`` attribute
(a :class:`Preprocess` or a dict), or its file may define ``PREPROCESS``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Optional

from explorer.encoders.base import Architecture, Preprocess  # noqa: F401  (Architecture: re-exported)
from explorer.core.errors import InputError

_FILE_MODULES: dict = {}


def builtin_architectures():
    """The registry entries of the built-in architectures ([] if the module is missing)."""
    try:
        from explorer.encoders.archs import ARCHITECTURES
    except ImportError:
        return []
    return ARCHITECTURES.entries()


def is_factory_spec(text: str) -> bool:
    left, sep, right = str(text).rpartition(":")
    return bool(sep and left and right and (left.endswith(".py") or "." in left or "/" in left or "\\" in left)
                and right.isidentifier())


def _import_file(path: Path):
    path = path.resolve()
    stamp = (path.stat().st_mtime_ns, path.stat().st_size)
    cached = _FILE_MODULES.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    name = "explorer_user_factory_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path.name}: cannot be imported as a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined there stay picklable
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InputError(f"{path.name}: importing it failed ({type(exc).__name__}: {exc}).") from None
    _FILE_MODULES[path] = (stamp, module)
    return module


def load_factory(spec: str) -> Architecture:
    """``"path/to/file.py:function"`` (or ``"package.module:function"``) -> :class:`Architecture`."""
    left, sep, fname = str(spec).rpartition(":")
    if not sep or not left or not fname:
        raise InputError(f"Factory {spec!r}: give it as path/to/file.py:function.")
    path = Path(left).expanduser()
    if left.endswith(".py") or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: no such factory file.")
        module = _import_file(path)
        where = path.name
    else:
        try:
            module = importlib.import_module(left)
        except ImportError as exc:
            raise InputError(f"Factory {spec!r}: cannot import {left} ({exc}).") from None
        where = left
    fn = getattr(module, fname, None)
    if fn is None or not callable(fn):
        funcs = [n for n, v in vars(module).items()
                 if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
        hint = f" (it defines: {', '.join(sorted(funcs)[:8])})" if funcs else ""
        raise InputError(f"{where} has no function {fname!r}{hint}.")
    pre = getattr(fn, "preprocess", None) or getattr(module, "PREPROCESS", None)
    from explorer.encoders.checkpoint import as_preprocess

    defaults = {}
    try:
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    except (TypeError, ValueError):
        pass
    is_file = left.endswith(".py") or path.exists()
    return Architecture(name=f"{path.name if is_file else left}:{fname}", build=fn,
                        preprocess=as_preprocess(pre, where), kwargs=defaults,
                        spec=f"{path.resolve() if is_file else left}:{fname}")


def builtin(name: str) -> Architecture:
    try:
        from explorer.encoders.archs import ARCHITECTURES
    except ImportError:
        raise InputError(f"Unknown architecture {name!r}: no built-in architectures are available; "
                         f"give a factory as path/to/file.py:function.") from None
    try:
        entry = ARCHITECTURES.get(name)
    except InputError:
        from explorer.encoders import vision

        found = vision.lookup(str(name))
        if found is not None:
            return found
        known = ", ".join(ARCHITECTURES.names()) or "none"
        extra = ("" if vision.torchvision_names() or vision.timm_available() else
                 " (torchvision and timm names need the [vision] extra)")
        raise InputError(f"Unknown architecture {name!r}; built-in ones: {known}, any torchvision "
                         f"classification model and timm:NAME{extra}; or give a factory "
                         f"as path/to/file.py:function.") from None
    from explorer.encoders.checkpoint import as_preprocess

    pre = entry.extra.get("preprocess") or getattr(entry.func, "preprocess", None)
    return Architecture(name=name, build=entry.func, preprocess=as_preprocess(pre, name),
                        kwargs=dict(entry.extra.get("kwargs", {})), builtin=True, spec=name)


def registered_architecture(name: str) -> Architecture:
    """A registered architecture by name (built-in, ``[vision]`` ones, or registered by an
    installed plugin); never imports or runs anything named by ``name`` itself. InputError
    when no registered architecture has that name."""
    return builtin(name)


def resolve_architecture(arch: Any = None, factory: Any = None) -> Optional[Architecture]:
    """The architecture the user named: ``factory`` (a spec or a callable) wins over ``arch``
    (a built-in name, or a spec). None when neither is given."""
    if isinstance(arch, Architecture) and factory is None:
        return arch
    if factory is not None:
        if callable(factory):
            name = getattr(factory, "__name__", "factory")
            from explorer.encoders.checkpoint import as_preprocess

            return Architecture(name=name, build=factory,
                                preprocess=as_preprocess(getattr(factory, "preprocess", None), name))
        return load_factory(str(factory))
    if arch is None or arch == "":
        return None
    if callable(arch):
        return resolve_architecture(factory=arch)
    if is_factory_spec(str(arch)):
        return load_factory(str(arch))
    return builtin(str(arch))


def build_model(archi: Architecture, kwargs: Optional[dict] = None):
    """Instantiate ``archi`` with ``kwargs``; the user's errors become one-sentence InputErrors."""
    import torch.nn as nn

    try:
        model = archi.build(**(kwargs or {}))
    except TypeError as exc:
        raise InputError(f"Architecture {archi.name} does not accept these settings "
                         f"({exc}).") from None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"Architecture {archi.name} failed to build ({type(exc).__name__}: {exc}).") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"Architecture {archi.name} returned a {type(model).__name__}, not a torch.nn.Module.")
    return model.eval()
