"""What to tell the user about an encoder's set-up, and parsing the per-channel values they
type; shared by the command line and the encoder dialog (no Qt here)."""

from __future__ import annotations

from explorer.core.errors import InputError


def channel_values(text: str, flag: str, positive: bool = False) -> list:
    """``"0.485, 0.456,0.406"`` -> floats (one or three; above 0 when ``positive``, as a std
    must be); InputError naming ``flag``."""
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise InputError(f"{flag} takes numbers separated by commas (e.g. 0.485,0.456,0.406), not {text!r}.") from None
    if len(vals) not in (1, 3) or (positive and any(v <= 0 for v in vals)):
        raise InputError(f"{flag} needs one or three numbers" + (" above 0" if positive else "")
                         + f", not {text!r}.")
    return vals


def encoder_notes(encoder) -> list[str]:
    """Lines telling the user how ``encoder`` was set up: the network chosen from several, the
    classifier removed or suspected, and the preprocessing (saying when it is the defaults)."""
    info, lines = encoder.info, []
    if info.get("submodels"):
        lines.append(f"{encoder.source.name} holds {len(info['submodels'])} networks "
                     f"({', '.join(info['submodels'])}); using {info['submodel']} ({info.get('submodel_rule')}).")
    if info.get("head_removed"):
        lines.append(f"{info.get('arch')}: classifier removed: {info['head_removed']}.")
    if info.get("output_looks_like_logits"):
        lines.append(f"note: {info['output_looks_like_logits']}.")
    if info.get("layer_for_pooling"):
        lines.append(f"{info['layer_for_pooling']}.")
    if info.get("input_kind"):
        lines.append(f"input kind: {info['input_kind']}.")
    src = str(info.get("preprocess_source", ""))
    pre = encoder.preprocess.describe()
    if src.startswith("defaults") and "set by the user" not in src:
        lines.append(f"note: no preprocessing declared for {encoder.name}; using defaults: {pre} "
                     f"(set them with --image-size/--resize/--interpolation/--mean/--std or a .json sidecar).")
    else:
        lines.append(f"preprocessing: {pre} (from {src}).")
    return lines


