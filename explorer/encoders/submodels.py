"""Checkpoints that hold several networks: which one becomes the encoder.

Self-supervised trainers save more than one copy of the encoder:

    MoCo v1/v2        encoder_q (query) / encoder_k (key, momentum)     -> encoder_q
    MoCo v3           base_encoder / momentum_encoder                    -> base_encoder
    DINO              teacher / student (top-level dicts)                -> teacher
    BYOL, solo-learn  backbone / momentum_backbone, online_* / target_*  -> backbone / online
    EMA copies        state_dict / state_dict_ema, model / model_ema     -> the model itself

The rule: the online (query) network, except DINO, whose paper evaluates the teacher. The
candidates are listed in that preference order (then by name), so the choice never depends on
dict or set order (it used to depend on ``PYTHONHASHSEED`` for MoCo). ``submodel=NAME``
(``--submodel``) picks another. The chosen network's tensors are the ones fitted to the
architecture, with its prefix (and a DDP ``module.`` wrapper) removed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from explorer.core.errors import CheckpointError

#: Network names, most preferred first (see the module docstring); unknown roles come last.
PREFERENCE = ("teacher", "encoder_q", "base_encoder", "backbone", "online_network", "online_encoder",
              "online", "state_dict", "model", "student", "encoder_k", "momentum_encoder",
              "momentum_backbone", "target_network", "target_encoder", "target", "state_dict_ema",
              "model_ema", "ema_model", "ema", "momentum_model", "teacher_ema")
#: Why each preferred name wins, printed with the choice.
WHY = {"teacher": "DINO's teacher, the network its paper evaluates",
       "encoder_q": "MoCo's query encoder", "base_encoder": "MoCo v3's base (query) encoder",
       "backbone": "the online backbone, not its momentum copy",
       "online_network": "BYOL's online network", "online_encoder": "the online encoder",
       "online": "the online network", "state_dict": "the model itself, not its EMA copy",
       "model": "the model itself, not its EMA copy"}
#: Wrappers that may sit above the role name (``module.encoder_q.conv1.weight``).
WRAPPERS = ("module.", "model.", "_orig_mod.", "net.")


def _rank(name: str) -> tuple:
    return (PREFERENCE.index(name) if name in PREFERENCE else len(PREFERENCE), name)


def _flat_groups(sd: dict) -> tuple[str, dict]:
    """(wrapper, {role: {key-without-prefix: tensor}}) for the roles found as key prefixes."""
    wrapper = ""
    for w in WRAPPERS:
        if sd and all(k.startswith(w) for k in sd):
            wrapper = w
            break
    groups: dict = {}
    for k, v in sd.items():
        rest = k[len(wrapper):]
        role, dot, tail = rest.partition(".")
        if dot and role in PREFERENCE and role not in ("state_dict",):
            groups.setdefault(role, {})[tail] = v
    return wrapper, groups


def candidates(ckpt) -> list[str]:
    """The networks ``ckpt`` holds, preferred first ([] when it holds one)."""
    nested = getattr(ckpt, "alternatives", None) or {}
    if len(nested) > 1:
        return sorted(nested, key=_rank)
    _, groups = _flat_groups(ckpt.state_dict)
    # a role group counts only when there is another one to choose from
    return sorted(groups, key=_rank) if len(groups) > 1 else []


def choose_submodel(ckpt, submodel: Optional[str] = None):
    """``(checkpoint restricted to one network, info)``; the checkpoint unchanged when it holds
    one network. ``submodel`` names the network; None: the documented rule."""
    names = candidates(ckpt)
    if not names:
        if submodel:
            raise CheckpointError(f"{ckpt.path.name} holds a single network, so there is no "
                                  f"submodel {submodel!r} to choose.")
        return ckpt, {}
    if submodel and submodel not in names:
        raise CheckpointError(f"{ckpt.path.name} has no network {submodel!r}; it holds "
                              f"{', '.join(names)}.")
    pick = submodel or names[0]
    info = {"submodels": names, "submodel": pick,
            "submodel_rule": ("chosen by the user" if submodel else
                              f"{WHY.get(pick, 'first in the documented order')}; choose another with --submodel")}
    nested = getattr(ckpt, "alternatives", None) or {}
    if len(nested) > 1:
        return replace(ckpt, state_dict=nested[pick], nested_key=pick), info
    wrapper, groups = _flat_groups(ckpt.state_dict)
    info["prefix_stripped"] = f"{wrapper}{pick}."
    return replace(ckpt, state_dict=groups[pick], nested_key=ckpt.nested_key), info
