"""Weights-only files plus an architecture: ``.pt/.pth/.bin`` state_dicts, PyTorch Lightning
``.ckpt`` (weights nested under ``state_dict``), ``{"model": sd}``-style training checkpoints and
``.safetensors``.

The file is read with ``torch.load(weights_only=True)`` (or safetensors), so opening it runs
no code from it. The architecture comes from the user (a registered name or a factory
``file.py:function``), else from the checkpoint's metadata (``arch`` key or ``<file>.json``
sidecar), else it is the one built-in architecture the weights fit exactly. A name found in a
file resolves only against registered architectures; a factory spec or path found there is
refused (code runs only from the user's own ``--factory``), and its ``arch_kwargs`` must be
plain JSON values, passed only to registered builders. A full pickled ``nn.Module`` is opened
only with ``trust=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from explorer.encoders.base import DEFAULTS_NOTE, Encoder, Preprocess
from explorer.encoders.checkpoint import (Checkpoint, count_parameters, fits_exactly, is_plain_json,
                                          load_into, merge_preprocess, read_checkpoint, read_safetensors)
from explorer.encoders.factory import (Architecture, build_model, builtin, builtin_architectures,
                                       is_factory_spec, registered_architecture, resolve_architecture)
from explorer.encoders.registry import ENCODERS
from explorer.core.errors import CheckpointError, InputError


def _looks_like_code(name: str) -> bool:
    """A factory spec or a path (``module:function``, ``file.py:fn``, ``/abs``, ``../x``)
    rather than the name of a registered architecture."""
    return (is_factory_spec(name) or any(c in name for c in "/\\") or ".py" in name
            or (":" in name and not name.startswith(("timm:", "torchvision:"))) or name.startswith("."))


def _meta_architecture(ckpt: Checkpoint) -> Optional[Architecture]:
    """The architecture a checkpoint (or its sidecar) names in its metadata, resolved only
    against registered architectures (issue 13: a name in a file is a name, never code).

    A factory spec or path found there is refused with one sentence naming the file: code runs
    only when the user passes ``--factory`` (or fills the factory field) themselves."""
    meta, path = ckpt.meta, ckpt.path
    name = meta.get("arch")
    if name is None or name == "":
        return None
    where = ckpt.meta_origin.get("arch", path.name)
    if not isinstance(name, str):
        raise CheckpointError(f"{where} gives an architecture that is not a name "
                              f"({type(name).__name__}); pass --arch NAME or --factory file.py:function.")
    if _looks_like_code(name):
        raise CheckpointError(
            f"{where} names {name!r} as its architecture, and Embedding Explorer never runs code "
            f"named in a file; if you trust it, pass --factory file.py:function explicitly.")
    try:
        return registered_architecture(name)
    except InputError:
        known = ", ".join(e.name for e in builtin_architectures()) or "none"
        raise CheckpointError(
            f"{where} names the architecture {name!r}, which is not registered here (known: {known}; "
            f"torchvision/timm names need the [vision] extra); pass --arch NAME or "
            f"--factory file.py:function.") from None


def _meta_arch_kwargs(ckpt: Checkpoint) -> Optional[dict]:
    """``arch_kwargs`` from the checkpoint or its sidecar: plain JSON values only."""
    kwargs = ckpt.meta.get("arch_kwargs")
    if kwargs is None:
        return None
    where = ckpt.meta_origin.get("arch_kwargs", ckpt.path.name)
    if not isinstance(kwargs, dict) or not is_plain_json(kwargs):
        raise CheckpointError(f"{where}: arch_kwargs must be a JSON object of plain values "
                              f"(strings, numbers, booleans, null, lists and objects of those).")
    return dict(kwargs)


def _guess_architecture(ckpt: Checkpoint) -> Optional[Architecture]:
    """The single built-in architecture (default settings) the weights fit exactly, if any."""
    fits = []
    for entry in builtin_architectures():
        try:
            archi = builtin(entry.name)
            model = build_model(archi, {})
        except Exception:
            continue
        if fits_exactly(model, ckpt.state_dict):
            fits.append(archi)
    return fits[0] if len(fits) == 1 else None


def encoder_from_checkpoint(ckpt: Checkpoint, fmt: str, *, arch: Any = None, factory: Any = None,
                            arch_kwargs: Optional[dict] = None, preprocess: Any = None,
                            trust: bool = False, submodel: Optional[str] = None) -> Encoder:
    """Build the :class:`Encoder` for a read checkpoint (see the module docstring)."""
    path, meta = ckpt.path, ckpt.meta
    meta_where = ckpt.meta_origin.get("preprocess", path.name)
    info: dict = {}
    for k in ("epoch", "step"):
        if k in meta:
            info[k] = meta[k]
    name = str(meta.get("name") or path.stem)
    if ckpt.module is not None:  # a pickled nn.Module (trusted)
        module = ckpt.module.eval()
        own = getattr(module, "preprocess", None)
        base, src = ((own, f"the model's own preprocess attribute") if isinstance(own, Preprocess)
                     else (Preprocess(), DEFAULTS_NOTE))
        pre, src = _with_meta_and_user(base, src, meta.get("preprocess"), meta_where, preprocess)
        info.update({"arch": type(module).__name__, "pickled_module": True, "trusted": True,
                     "parameters": count_parameters(module), "preprocess_source": src})
        if arch is not None or factory is not None:
            info["arch_ignored"] = "the file holds a whole model, so the architecture given was not used"
        return Encoder(name=name, source=path, format=fmt, module=module, preprocess=pre,
                       layer=meta.get("layer"), pooling=str(meta.get("pooling") or "auto"), info=info)

    from explorer.encoders.submodels import choose_submodel

    ckpt, chosen = choose_submodel(ckpt, submodel)
    info.update(chosen)
    archi = resolve_architecture(arch, factory)
    from_meta = False
    if archi is None:
        archi = _meta_architecture(ckpt)
        from_meta = archi is not None
    if archi is None:
        archi = _guess_architecture(ckpt)
        if archi is not None:
            info["arch_guessed"] = True
    if archi is None:
        known = ", ".join(e.name for e in builtin_architectures()) or "none"
        raise CheckpointError(f"{path.name} holds only weights; name the architecture they belong to with "
                              f"--arch NAME (built-in: {known}, or a torchvision/timm name with the [vision] "
                              f"extra) or --factory path/to/file.py:function.")
    meta_arch = str(meta.get("arch") or "")
    kwargs = dict(arch_kwargs or {})
    if arch_kwargs is None and "arch_kwargs" in meta and (from_meta or meta_arch in (archi.name, "")):
        file_kwargs = _meta_arch_kwargs(ckpt)
        if archi.builtin:  # a file's settings go only to registered builders, never to a factory
            kwargs = file_kwargs or {}
        elif file_kwargs:
            info["arch_kwargs_ignored"] = (f"{ckpt.meta_origin.get('arch_kwargs', path.name)} gives arch_kwargs, "
                                           f"which are passed only to registered architectures")
    model = build_model(archi, kwargs)
    try:
        info.update(load_into(model, ckpt, archi.name))
    except CheckpointError as exc:
        other = _guess_architecture(ckpt)
        if other is None or other.name == archi.name:
            raise
        raise CheckpointError(f"{str(exc).rstrip('.')}; it does fit the built-in {other.name} "
                              f"(--arch {other.name}).") from None
    info.update({"arch": archi.name, "arch_kwargs": kwargs, "parameters": count_parameters(model)})
    if not archi.builtin and archi.spec:
        info["factory"] = archi.spec
    from explorer.encoders.vision import describe_head

    head = describe_head(model)
    if head.get("head_removed") and info.get("unexpected_keys"):
        info["head_weights_unused"] = info.pop("unexpected_keys")
    info.update(head)
    base, src = archi.preprocess, archi.preprocess_note
    if archi.preprocess_from is not None:
        base, src = archi.preprocess_from(model)
    if base is None:
        base, src = Preprocess(), DEFAULTS_NOTE
    elif not src:
        src = f"{'the built-in ' if archi.builtin else 'factory '}{archi.name}"
    pre, src = _with_meta_and_user(base, src, meta.get("preprocess"), meta_where, preprocess)
    info["preprocess_source"] = src
    return Encoder(name=name, source=path, format=fmt, module=model, preprocess=pre,
                   layer=meta.get("layer"), pooling=str(meta.get("pooling") or "auto"), info=info)


def _with_meta_and_user(base: Preprocess, src: str, meta_pre: Any, meta_where: str, user_pre: Any):
    """The preprocessing and where it came from: ``base`` (architecture/library), then the
    checkpoint's or sidecar's ``preprocess`` (fields it names), then the user's."""
    if meta_pre is not None:
        base = merge_preprocess(base, meta_pre, meta_where)
        src = meta_where if src == DEFAULTS_NOTE else f"{src}, then {meta_where}"
    if user_pre is not None:
        base = merge_preprocess(base, user_pre, "preprocess")
        src = f"{src}, then the user's settings"
    return base, src


@ENCODERS.register("state_dict", label="PyTorch weights + architecture",
                   extensions=(".pt", ".pth", ".ckpt", ".bin", ".pkl", ".tar"), priority=0,
                   description="A state_dict (.pt/.pth/.bin) or Lightning .ckpt, with an architecture.")
def open_state_dict(path: Path, *, arch: Any = None, factory: Any = None, trust: bool = False,
                    arch_kwargs: Optional[dict] = None, preprocess: Any = None,
                    submodel: Optional[str] = None, **_options) -> Encoder:
    """A state_dict (.pt/.pth/.bin) or Lightning .ckpt, with an architecture."""
    ckpt = read_checkpoint(Path(path), trust=trust)
    return encoder_from_checkpoint(ckpt, "state_dict", arch=arch, factory=factory,
                                   arch_kwargs=arch_kwargs, preprocess=preprocess, trust=trust,
                                   submodel=submodel)


@ENCODERS.register("safetensors", label="safetensors weights + architecture",
                   extensions=(".safetensors",), priority=10,
                   description="Weights in a .safetensors file, with an architecture.")
def open_safetensors(path: Path, *, arch: Any = None, factory: Any = None,
                     arch_kwargs: Optional[dict] = None, preprocess: Any = None,
                     submodel: Optional[str] = None, **_options) -> Encoder:
    """Weights in a .safetensors file, with an architecture."""
    ckpt = read_safetensors(Path(path))
    return encoder_from_checkpoint(ckpt, "safetensors", arch=arch, factory=factory,
                                   arch_kwargs=arch_kwargs, preprocess=preprocess, submodel=submodel)
