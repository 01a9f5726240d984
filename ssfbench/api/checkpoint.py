"""Checkpoints: a ``.pt`` with the weights and everything needed to rebuild the method, plus a
``.json`` metadata record beside it. Written atomically (temporary file, then rename)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ssfbench import version
from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from ssfbench.runtime.safeload import read_torch_file

FORMAT = "ssfbench.checkpoint/1"


def method_record(method: Method) -> dict[str, Any]:
    """Everything needed to rebuild ``method`` except its weights."""
    return {
        "format": FORMAT,
        "method": method.name,
        "config": method.config.to_dict(),
        "backbone": method.backbone,
        "image_size": method.image_size,
        "pretrained": method.pretrained,
        "preprocess": method.preprocess.to_dict(),
        "embed_dim": method.embed_dim,
        "ssfbench_version": version.__version__,
        # the backbone weights' identity (ssfbench.nn.weights), only when there are some: default records unchanged
        **({"pretrained_weights": method.pretrained_weights} if getattr(method, "pretrained_weights", None) else {}),
    }


def torch_save_stable(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through a file object. Saved to a path, the archive's inner
    folder is named after the file, so the same weights written via a random temporary name would
    give different bytes (and a different sha256) each time; through a file object it is always
    ``archive``, and equal contents give equal files."""
    with open(path, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(method: Method, path: Path, meta: dict[str, Any] | None = None) -> str:
    """Save weights + record to ``path`` and the record + ``meta`` + sha256 to ``path.with_suffix('.json')``.
    Returns the checkpoint's sha256."""
    payload = {**method_record(method), "state_dict": method.state_dict()}
    atomic_write_bytes(path, lambda tmp: torch_save_stable(payload, tmp))
    digest = sha256_file(path)
    atomic_write_json(path.with_suffix(".json"), {**method_record(method), **(meta or {}), "sha256": digest})
    return digest


def _read_torch_file(path: Path, what: str) -> Any:
    """The file's contents on CPU, read without running its code (:func:`ssfbench.runtime.safeload.read_torch_file`:
    a file of pickled Python objects needs ``--trust-weights``); a missing, unreadable or refused file
    is a one-line UserError naming it."""
    return read_torch_file(path, what)


def load_checkpoint(path: Path) -> tuple[Method, str]:
    """Rebuild the method saved at ``path``; returns it (in eval mode) and the file's sha256."""
    from ssfbench.api.registry import get_method

    path = Path(path)
    payload = _read_torch_file(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not an ssfbench checkpoint (expected format {FORMAT!r}); "
                        "released weights of other layouts load through --weights with --method")
    cls = get_method(payload["method"])
    method = cls(cls.Config(**payload["config"]), backbone=payload["backbone"],
                 image_size=payload["image_size"], pretrained=None)
    try:
        method.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit method {payload['method']!r}: {str(exc).splitlines()[0]}") from None
    method.pretrained = payload.get("pretrained")
    method.pretrained_weights = payload.get("pretrained_weights")
    saved = payload.get("preprocess")
    if saved and saved != method.preprocess.to_dict():  # released weights' preprocessing travels with them
        from ssfbench.api.preprocess import Preprocess

        method.weights_preprocess = Preprocess.from_dict(saved)
    return method.eval(), sha256_file(path)


def load_weights(method: Method, path: Path) -> None:
    """Load weights from ``path`` into ``method``: through the method's own reader when it declares a
    ``weights_format`` (:meth:`~ssfbench.api.method.Method.load_weights_file`); else an ssfbench
    checkpoint of the same method, a dict with a ``state_dict`` entry, or a bare state dict in the method's own or a released layout
    (``Method.load_released_weights``); a ``module.`` prefix (DataParallel) is stripped. Keys or
    shapes that do not fit raise ``UserError`` naming the missing and unexpected keys."""
    path = Path(path)
    if method.weights_format is not None:  # a format of the method's own (e.g. TorchScript): never torch.load
        if not path.is_file():
            raise UserError(f"{path}: weights file not found")
        method.load_weights_file(path)
        return
    payload = _read_torch_file(path, "weights file")
    if isinstance(payload, torch.nn.Module):  # a pickled model object (read under --trust-weights)
        payload = payload.state_dict()
    if isinstance(payload, dict) and any(isinstance(v, torch.nn.Module) for v in payload.values()):  # e.g. the model object pickled under a key (``state_dict_model``)
        payload = {k: v.state_dict() if isinstance(v, torch.nn.Module) else v for k, v in payload.items()}
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        if payload["method"] != method.name:
            raise UserError(f"{path}: checkpoint of method {payload['method']!r}, not {method.name!r}")
        state = payload["state_dict"]
    elif isinstance(payload, dict):
        state = method.released_state_dict(payload)
    else:
        raise UserError(f"{path}: expected a state dict, got {type(payload).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        method.load_released_weights(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise UserError(f"{path}: weights do not fit method {method.name!r}: {' '.join(lines[1:3])[:400]}") from None
