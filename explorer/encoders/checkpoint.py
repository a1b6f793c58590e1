"""Reading weights files safely and fitting them to an architecture.

The default path never runs code from a checkpoint: ``torch.load(weights_only=True)`` (or
safetensors), and a file that holds pickled Python objects is refused with a message telling
the user to pass ``--trust`` if they trust it. Fitting a state_dict to a model detects the
prefix a training wrapper added (``module.``, ``model.``, ``backbone.``, ``_orig_mod.``...,
or any other, found by matching key suffixes) and reports missing keys and shape mismatches
in one sentence.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from explorer.encoders.base import Preprocess
from explorer.core.errors import CheckpointError, InputError, TrustRequired

# Keys under which training scripts nest the weights, tried in this order.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network",
               "model_ema", "ema", "params", "weights", "teacher", "student")
# Prefixes commonly added by wrappers (DataParallel, Lightning, torch.compile, SSL frameworks).
COMMON_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.", "net.")
# Metadata keys a checkpoint dict (or its JSON sidecar) may carry.
META_KEYS = ("arch", "architecture", "arch_kwargs", "preprocess", "epoch", "step", "global_step",
             "layer", "pooling", "name")

# Classes that are plain data and safe to rebuild from a checkpoint (numpy scalars and arrays
# in metric logs, argparse.Namespace and Lightning's AttributeDict in hyper-parameters).
SAFE_GLOBAL_NAMES = (
    "argparse.Namespace",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.ndarray", "numpy.dtype",
    "lightning.fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)


@dataclass
class Checkpoint:
    """What a weights file held: the tensors, where they were found, and its metadata."""

    path: Path
    state_dict: dict = field(default_factory=dict)  # name -> torch.Tensor
    module: Any = None  # a full nn.Module (pickled model, trusted files only)
    nested_key: Optional[str] = None  # e.g. "state_dict" for Lightning checkpoints
    meta: dict = field(default_factory=dict)
    meta_origin: dict = field(default_factory=dict)  # metadata key -> name of the file it came from
    alternatives: dict = field(default_factory=dict)  # top-level name -> tensors, when there are several networks


# -- metadata ----------------------------------------------------------------------------
def _parsed(value: Any, where: str) -> Any:
    """A preprocessing given as a JSON string, parsed; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise InputError(f"{where or 'preprocess'}: the preprocessing is not valid JSON.") from None


def as_preprocess(value: Any, where: str = "") -> Optional[Preprocess]:
    """A :class:`Preprocess` from a Preprocess, a dict or a JSON string (None stays None)."""
    if value is None or isinstance(value, Preprocess):
        return value
    value = _parsed(value, where)
    if isinstance(value, Mapping):
        try:
            return Preprocess.from_dict(dict(value))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where or 'preprocess'}: unusable preprocessing ({exc}).") from None
    raise InputError(f"{where or 'preprocess'}: preprocessing must be a dict, not {type(value).__name__}.")


def merge_preprocess(base: Preprocess, override: Any, where: str = "") -> Preprocess:
    """``override`` applied on top of ``base``: a :class:`Preprocess` replaces it; a dict (or JSON
    string) changes only the fields it names (a sidecar giving ``{"size": 48}`` keeps the
    architecture's mean and std)."""
    if override is None:
        return base
    if isinstance(override, Preprocess):
        return override
    override = _parsed(override, where)
    if not isinstance(override, Mapping):
        raise InputError(f"{where or 'preprocess'}: preprocessing must be a dict, not {type(override).__name__}.")
    from dataclasses import asdict

    d = asdict(base)
    d.update({k: v for k, v in dict(override).items() if k in Preprocess.__dataclass_fields__})
    try:
        return Preprocess.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where or 'preprocess'}: unusable preprocessing ({exc}).") from None


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a checkpoint: ``model.pt`` -> ``model.pt.json``."""
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict:
    """Metadata from ``<file>.json`` next to the checkpoint (empty when there is none)."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{side.name}: the metadata next to {path.name} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{side.name}: the metadata next to {path.name} must be a JSON object.")
    return data


#: How deeply nested ``arch_kwargs`` from a file may be.
MAX_JSON_DEPTH = 16


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """True when ``value`` is made only of str/int/float/bool/None and lists/dicts of those
    (string keys), at most :data:`MAX_JSON_DEPTH` deep: data, never an object with behaviour."""
    if depth > MAX_JSON_DEPTH:
        return False
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) in (list, tuple):
        return all(is_plain_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def meta_with_sidecar(meta: dict, path: Path) -> tuple[dict, dict]:
    """``meta`` (read from ``path``) overridden by the JSON sidecar, and for each key the name of
    the file it came from (so that a refusal can name it)."""
    origin = {k: path.name for k in meta}
    side = read_sidecar(path)
    meta = {**meta, **side}
    origin.update({k: sidecar_path(path).name for k in side})
    if "architecture" in side and "arch" not in side:
        meta["arch"] = meta.pop("architecture")
        origin["arch"] = sidecar_path(path).name
    return meta, origin


def _plain(value: Any) -> Any:
    """A JSON-able copy of small metadata values (tensors become numbers)."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.item() if value.numel() == 1 else value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, ConfigStub):
        return stub_value(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except Exception:
            return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def collect_meta(obj: Any) -> dict:
    """Metadata keys found at the top level of a checkpoint dict, and Lightning's
    ``hyper_parameters`` (``arch``/``preprocess`` there count too)."""
    meta: dict = {}
    if not isinstance(obj, Mapping):
        return meta
    hp = obj.get("hyper_parameters") or obj.get("hparams")
    if isinstance(hp, ConfigStub):
        hp = stub_value(hp)
    if isinstance(hp, Mapping) or hasattr(hp, "__dict__"):
        hpd = dict(hp) if isinstance(hp, Mapping) else vars(hp)
        for k in META_KEYS:
            if k in hpd:
                meta[k] = _plain(hpd[k])
    for k in META_KEYS:
        if k in obj and not _is_tensor(obj[k]):
            meta[k] = _plain(obj[k])
        elif k in obj and _is_tensor(obj[k]) and obj[k].numel() == 1:
            meta[k] = _plain(obj[k])
    if "architecture" in meta and "arch" not in meta:
        meta["arch"] = meta.pop("architecture")
    if "global_step" in meta and "step" not in meta:
        meta["step"] = meta.pop("global_step")
    return meta


# -- reading -----------------------------------------------------------------------------
def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _tensor_dict(obj: Any) -> Optional[dict]:
    """``obj`` as name -> tensor if it is a non-empty mapping made (mostly) of tensors."""
    if not isinstance(obj, Mapping) or not obj:
        return None
    tensors = {str(k): v for k, v in obj.items() if _is_tensor(v)}
    if tensors and len(tensors) >= 0.5 * len(obj):
        return tensors
    return None


def find_state_dict(obj: Any, path: Path) -> tuple[dict, Optional[str]]:
    """The tensors of a loaded checkpoint and the key they were nested under (None: top level).

    Accepts a bare state_dict, Lightning's ``{"state_dict": ...}``, ``{"model": sd}``,
    ``{"model_state_dict": sd}`` and the other :data:`NESTED_KEYS`, one or two levels deep.
    """
    sd = _tensor_dict(obj)
    if sd is not None:
        return sd, None
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            inner = obj.get(key)
            sd = _tensor_dict(inner)
            if sd is not None:
                return sd, key
            if isinstance(inner, Mapping):
                for key2 in NESTED_KEYS:
                    sd = _tensor_dict(inner.get(key2))
                    if sd is not None:
                        return sd, f"{key}.{key2}"
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointError(f"{path.name} holds no weights that Embedding Explorer can find "
                              f"(top-level keys: {keys}).")
    raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not model weights.")


# -- OmegaConf hyper-parameters without OmegaConf's code ----------------------------------------
#: Classes of OmegaConf configs (solo-learn, Hydra-based trainers keep them in
#: ``hyper_parameters``). A weights-only load rebuilds each as a :class:`ConfigStub` that only
#: stores the pickled state: nothing from omegaconf (installed or not) runs, and no other class
#: is allowed. The plain values are read back by :func:`stub_value`.
OMEGACONF_CLASSES = (
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode", "omegaconf.nodes.BooleanNode", "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.BytesNode", "omegaconf.nodes.PathNode",
)


class ConfigStub:
    """Stands in for a pickled OmegaConf object: keeps its state as data, runs nothing."""

    _explorer_class = ""

    def __setstate__(self, state) -> None:
        self.__dict__["_state"] = state


_STUBS: dict = {}


def _stub_class(full_name: str) -> type:
    if full_name not in _STUBS:
        mod, _, name = full_name.rpartition(".")
        _STUBS[full_name] = type(name, (ConfigStub,), {"_explorer_class": full_name, "__module__": mod})
    return _STUBS[full_name]


def _config_globals() -> list:
    """(object, "module.name") pairs for ``torch.serialization.safe_globals``: the OmegaConf
    stand-ins, and the plain builtins/typing names their pickles mention."""
    import collections
    import typing

    pairs = [(_stub_class(n), n) for n in OMEGACONF_CLASSES]
    pairs += [(typing.Any, "typing.Any"), (collections.defaultdict, "collections.defaultdict")]
    pairs += [(t, f"builtins.{t.__name__}") for t in (dict, list, int, float, str, bool, tuple, bytes)]
    return pairs


def stub_value(value: Any) -> Any:
    """The plain value an OmegaConf stand-in held: a dict for DictConfig, a list for ListConfig,
    the value of a node; other stand-ins become their class name."""
    state = value.__dict__.get("_state")
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        state = {**(state[0] or {}), **state[1]}  # (dict, slots) state
    if isinstance(state, dict):
        if "_content" in state:
            content = state["_content"]
            if isinstance(content, Mapping):
                return {str(k): _plain(v) for k, v in content.items()}
            if isinstance(content, (list, tuple)):
                return [_plain(v) for v in content]
            return _plain(content)
        if "_val" in state:
            return _plain(state["_val"])
    return type(value)._explorer_class or type(value).__name__


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def _safe_globals() -> list:
    """The :data:`SAFE_GLOBAL_NAMES` that can be imported here, plus numpy's dtype classes
    (no package is imported for this beyond argparse and numpy)."""
    import importlib
    import sys

    found = []
    for name in SAFE_GLOBAL_NAMES:
        mod, _, attr = name.rpartition(".")
        if mod.split(".")[0] not in sys.modules and mod.split(".")[0] not in ("argparse", "numpy"):
            continue
        try:
            found.append(getattr(importlib.import_module(mod), attr))
        except Exception:
            continue
    try:
        import numpy.dtypes as npd

        found += [v for v in vars(npd).values() if isinstance(v, type)]
    except ImportError:  # numpy < 1.25
        pass
    return found + _config_globals()


def _unsafe_globals(path: Path, message: str) -> list[str]:
    """Names of the Python objects a checkpoint would build, beyond tensors and safe data."""
    import torch

    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        names = re.findall(r"GLOBAL ([\w.]+)", message)
    safe = set(SAFE_GLOBAL_NAMES) | {n for _, n in _config_globals()}
    names = [n for n in names if n not in safe and not n.startswith("numpy.dtypes.")]
    return [n for n in names if not n.startswith("torch.")] or names


def load_torch_file(path: Path, trust: bool = False) -> Any:
    """``torch.load`` on the CPU, weights only unless ``trust``; every failure becomes a
    one-sentence :class:`CheckpointError` naming the file."""
    import pickle

    import torch

    try:
        magic = _magic(path)
    except OSError as exc:
        raise CheckpointError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None
    is_zip = magic.startswith(b"PK")
    if not is_zip and not magic.startswith(b"\x80"):
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint (it is neither a torch.save "
                              f"archive nor a pickle).")
    if is_zip and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path.name} is damaged or incomplete (its zip archive cannot be read; "
                              f"was the copy cut short?).")
    if trust:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{path.name} could not be loaded even as a trusted file "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        names = _unsafe_globals(path, msg) if "Weights only load failed" in msg else []
        if names:
            what = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise TrustRequired(
                f"{path.name} contains code (pickled Python objects: {what}) that would run when "
                f"it is loaded; pass --trust (or confirm in the app) only if you trust this file.") from None
        if "Weights only load failed" in msg:
            raise TrustRequired(
                f"{path.name} holds Python objects that can only be loaded by running code from it; "
                f"pass --trust (or confirm in the app) only if you trust this file.") from None
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({msg.splitlines()[0][:200]}).") from None
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        if "zip" in first.lower() or "PytorchStreamReader" in first:
            raise CheckpointError(f"{path.name} is damaged or incomplete ({first.rstrip('.')}).") from None
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({first.rstrip('.')}).") from None
    except Exception as exc:  # KeyError/EOFError/ValueError from a file that only looks like one
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint "
                              f"({type(exc).__name__}: {str(exc)[:200]}).") from None


def read_checkpoint(path: Path, trust: bool = False) -> Checkpoint:
    """Read a ``.pt/.pth/.ckpt/.bin`` file: tensors, nesting key and metadata (the file's own
    keys, overridden by its JSON sidecar). A pickled ``nn.Module`` is returned in ``module``
    (only possible with ``trust``)."""
    import torch.nn as nn

    obj = load_torch_file(path, trust=trust)
    meta, origin = meta_with_sidecar(collect_meta(obj), path)
    if isinstance(obj, nn.Module):
        return Checkpoint(path, module=obj, meta=meta, meta_origin=origin)
    if isinstance(obj, Mapping):
        for key in ("model", "module", "net", "network", "model_ema", "ema"):
            if isinstance(obj.get(key), nn.Module):
                return Checkpoint(path, module=obj[key], nested_key=key, meta=meta, meta_origin=origin)
    sd, key = find_state_dict(obj, path)
    alternatives = {}
    if isinstance(obj, Mapping):  # DINO {"student", "teacher"}, timm {"state_dict", "state_dict_ema"}
        alternatives = {str(k): t for k, t in ((k, _tensor_dict(v)) for k, v in obj.items()) if t}
    return Checkpoint(path, state_dict=sd, nested_key=key, meta=meta, meta_origin=origin,
                      alternatives=alternatives if len(alternatives) > 1 else {})


def read_safetensors(path: Path) -> Checkpoint:
    """Read a ``.safetensors`` file; its header metadata (strings) and sidecar become meta."""
    try:
        from safetensors import safe_open
    except ImportError:  # pragma: no cover - a core dependency
        raise InputError("Reading .safetensors files needs the safetensors package: pip install safetensors.") from None
    try:
        sd = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = dict(f.metadata() or {})
            for k in f.keys():
                sd[k] = f.get_tensor(k)
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file "
                              f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}).") from None
    if not sd:
        raise CheckpointError(f"{path.name} holds no tensors.")
    meta: dict = {}
    for k, v in header.items():
        if k in META_KEYS:
            try:
                meta[k] = json.loads(v) if k in ("preprocess", "arch_kwargs", "epoch", "step", "global_step") else v
            except (TypeError, json.JSONDecodeError):
                meta[k] = v
    meta, origin = meta_with_sidecar(collect_meta(meta) if meta else {}, path)
    return Checkpoint(path, state_dict=sd, meta=meta, meta_origin=origin)


# -- fitting -----------------------------------------------------------------------------
def _shape(t) -> str:
    return "x".join(str(int(s)) for s in t.shape) or "scalar"


def _listing(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


@dataclass
class Fit:
    """How a state_dict maps onto a model's keys."""

    strip: str = ""  # prefix removed from the checkpoint's keys
    add: str = ""  # prefix added to them (the model nests what was saved)
    mapped: dict = field(default_factory=dict)  # model key -> tensor
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, model shape)
    ignored: int = 0  # checkpoint keys outside the stripped prefix (heads, projectors, losses)


def _candidates(sd_keys, model_keys: set) -> tuple[set, set]:
    """Prefixes to strip from checkpoint keys / add to them, found by matching key suffixes."""
    strip, add = {""} | set(COMMON_PREFIXES), set()
    for k in sd_keys:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in model_keys:
                strip.add(".".join(parts[:i]) + ".")
                break
    sd_set = set(sd_keys)
    for mk in model_keys:
        parts = mk.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in sd_set:
                add.add(".".join(parts[:i]) + ".")
                break
    return strip, add


def match_state_dict(sd: Mapping, model_sd: Mapping) -> Fit:
    """The best way to read ``sd`` into a model whose own state_dict is ``model_sd``: strip a
    prefix from the checkpoint's keys (or add one), maximising the keys that match."""
    model_keys = set(model_sd)
    strips, adds = _candidates(list(sd), model_keys)
    best: Optional[tuple] = None
    options = [(s, "") for s in strips] + [("", a) for a in adds]
    for strip, add in options:
        mapped, outside = {}, 0
        for k, v in sd.items():
            if strip and not k.startswith(strip):
                outside += 1
                continue
            mapped[add + k[len(strip):]] = v
        hits = sum(1 for k in mapped if k in model_keys)
        unexpected = len(mapped) - hits
        score = (hits, -unexpected, -len(strip) - len(add))
        if best is None or score > best[0]:
            best = (score, strip, add, mapped, outside)
    _, strip, add, mapped, outside = best
    fit = Fit(strip=strip, add=add, ignored=outside)
    for k, ref in model_sd.items():
        if k not in mapped:
            fit.missing.append(k)
        elif tuple(mapped[k].shape) != tuple(ref.shape):
            fit.mismatched.append((k, _shape(mapped[k]), _shape(ref)))
        else:
            fit.mapped[k] = mapped[k]
    fit.unexpected = [k for k in mapped if k not in model_sd]
    return fit


def _harmless_missing(key: str) -> bool:
    # BatchNorm's batch counter is absent from old checkpoints and unused in eval mode.
    return key.endswith("num_batches_tracked")


def load_into(model, ckpt: Checkpoint, arch_name: str) -> dict:
    """Load ``ckpt``'s tensors into ``model``; raise one :class:`CheckpointError` sentence listing
    missing keys and shape mismatches. Returns what the loader learned, for ``Encoder.info``."""
    import torch

    model_sd = model.state_dict()
    fit = match_state_dict(ckpt.state_dict, model_sd)
    missing = [k for k in fit.missing if not _harmless_missing(k)]
    if missing or fit.mismatched:
        if not fit.mapped:
            raise CheckpointError(
                f"{ckpt.path.name} does not fit {arch_name}: none of its {len(ckpt.state_dict)} tensors "
                f"match the architecture's {len(model_sd)} (file has {_listing(list(ckpt.state_dict))}; "
                f"{arch_name} expects {_listing(list(model_sd))}).")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key{'s' * (len(missing) != 1)} ({_listing(missing)})")
        if fit.mismatched:
            shown = ", ".join(f"{k} {a} in the file vs {b} in the model" for k, a, b in fit.mismatched[:3])
            more = ", ..." if len(fit.mismatched) > 3 else ""
            n = len(fit.mismatched)
            parts.append(f"{n} shape mismatch{'es' * (n != 1)} ({shown}{more})")
        if fit.unexpected:
            n = len(fit.unexpected)
            parts.append(f"{n} unexpected key{'s' * (n != 1)} ({_listing(fit.unexpected)})")
        raise CheckpointError(f"{ckpt.path.name} does not fit {arch_name}: {', '.join(parts)}.")
    with torch.no_grad():
        model.load_state_dict(fit.mapped, strict=False)
    info: dict = {}
    if ckpt.nested_key:
        info["nested_key"] = ckpt.nested_key
    if fit.strip:
        info["prefix_stripped"] = fit.strip
    if fit.add:
        info["prefix_added"] = fit.add
    if fit.unexpected:
        info["unexpected_keys"] = list(fit.unexpected)
    if fit.ignored:
        info["ignored_keys"] = fit.ignored
    return info


def fits_exactly(model, sd: Mapping) -> bool:
    """True when ``sd`` fills every tensor of ``model`` with the right shapes (any prefix)."""
    fit = match_state_dict(sd, model.state_dict())
    return not [k for k in fit.missing if not _harmless_missing(k)] and not fit.mismatched and not fit.unexpected


def count_parameters(module) -> int:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:
        return 0
