"""Loading weights released in another layout: module paths translated to this model's own, with
errors that name the keys that do not fit (in the layout the file uses)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def load_mapped(module: nn.Module, state: Mapping[str, torch.Tensor], key_map: Mapping[str, str], *,
                layout: str, released_ok: bool = True, hint: str = "") -> None:
    """Load ``state`` (this module's own layout, or a released one whose module paths ``key_map``
    translates) into ``module``. A nested ``state_dict_model`` entry and ``module.`` prefixes are
    unwrapped; ``num_batches_tracked`` (absent before PyTorch 1.0) and the curriculum buffers may be
    missing. Anything else missing, unexpected or mis-shaped raises ``RuntimeError`` naming the keys:
    a header line, one line with ``hint`` (when released keys cannot be used, ``released_ok=False``)
    and the missing/unexpected keys, one line with the shape mismatches."""
    nested = state.get("state_dict_model")
    if isinstance(nested, Mapping):
        state = nested
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = module.state_dict()
    loaded, given, unexpected = {}, {}, []
    for key, value in state.items():
        path, _, param = key.rpartition(".")
        ours = key if key in own else f"{key_map[path]}.{param}" if path in key_map and released_ok else None
        if ours is None:
            unexpected.append(key)
        else:
            loaded[ours], given[ours] = value, key
    released = any(given[k] != k for k in given)
    inverse = {v: k for k, v in key_map.items()}

    def name(key: str) -> str:  # report keys in the layout the file uses
        path, _, param = key.rpartition(".")
        return given.get(key) or (f"{inverse[path]}.{param}" if released and path in inverse else key)

    optional = ("num_batches_tracked", "curriculum.")
    missing = [name(k) for k in own if k not in loaded and not any(o in k for o in optional)]
    shapes = [f"{name(k)} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in loaded.items()
              if tuple(v.shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        notes = []
        if not released_ok and any(k.rpartition(".")[0] in key_map for k in unexpected):
            notes.append(hint)
        if unexpected and all(k.split(".")[0] in ("0", "1") for k in unexpected):
            notes.append("these look like a linear probe's keys; the released model is under 'state_dict_model'")
        for what, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = f", ... (+{len(keys) - 4} more)" if len(keys) > 4 else ""
                notes.append(f"{what} {len(keys)} key(s): {', '.join(keys[:4])}{more}")
        shape_line = "shape mismatch (given vs expected): " + ", ".join(shapes[:3]) if shapes else ""
        raise RuntimeError(f"weights do not fit the {layout} layout:\n"
                           + "\n".join(line for line in ("; ".join(notes), shape_line) if line))
    merged = dict(own)
    merged.update(loaded)
    module.load_state_dict(merged)


def translate_prefixes(state: Mapping[str, torch.Tensor], prefixes: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """``state`` with each key's first matching prefix of ``prefixes`` (released -> own) replaced;
    keys that match none are kept as they are (so a wrong file still names them)."""
    out = {}
    for key, value in state.items():
        new = next((own + key[len(rel):] for rel, own in prefixes.items() if key.startswith(rel)), key)
        out[new] = value
    return out


__all__ = ["load_mapped", "translate_prefixes"]
