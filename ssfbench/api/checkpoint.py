"""Checkpoints: a ``.pt`` with the weights and everything needed to rebuild the method, plus a
``.json`` metadata record beside it. Written atomically (temporary file, then rename)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

import ssfbench
from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_bytes, atomic_write_json

FORMAT = "ssfbench.checkpoint/1"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        "ssfbench_version": ssfbench.__version__,
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
    """``torch.load`` on CPU; a missing or unreadable file is a one-line UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not usable
        raise UserError(f"{path}: not a readable PyTorch {what} ({type(exc).__name__})") from None


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
    saved = payload.get("preprocess")
    if saved and saved != method.preprocess.to_dict():  # released weights' preprocessing travels with them
        from ssfbench.api.preprocess import Preprocess

        method.weights_preprocess = Preprocess.from_dict(saved)
    return method.eval(), sha256_file(path)


def load_weights(method: Method, path: Path) -> None:
    """Load weights from ``path`` into ``method``: an ssfbench checkpoint of the same method, a dict
    with a ``state_dict`` entry, or a bare state dict in the method's own or a released layout
    (``Method.load_released_weights``); a ``module.`` prefix (DataParallel) is stripped. Keys or
    shapes that do not fit raise ``UserError`` naming the missing and unexpected keys."""
    path = Path(path)
    payload = _read_torch_file(path, "weights file")
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
