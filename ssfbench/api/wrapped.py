"""Encoders made elsewhere, wrapped as methods: what the ``python`` and ``torchscript`` plugins build on.

:class:`FrozenModuleMethod` is the base of methods that wrap such a module: frozen, untrained, the
wrapped module's tensors kept out of the checkpoint's state dict (they are identified by digest, or
stored whole by the subclass as extra state). An encoder given in Python is named by a content digest
(:func:`encoder_digest`: run ids, checkpoints and caches are keyed by it) and fingerprinted by its
embeddings of a fixed probe batch (:func:`probe_embeddings`), which a reused run compares with the live
encoder's, so a cache made by one encoder is never read for another. The live encoders of this process
are registered here (:func:`register_encoder`); :func:`ssfbench.pipeline.outside.evaluate` is the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ssfbench.api.method import Method, eval_mode
from ssfbench.api.preprocess import Preprocess
from ssfbench.errors import UserError

#: images in the fixed batch an outside encoder is fingerprinted on (seeded uniform noise, uint8)
PROBE_BATCH = 2
#: the seed of that batch
PROBE_SEED = 20240229
#: how close a reused run's stored probe embeddings must be to the live encoder's (relative to their scale)
PROBE_TOLERANCE = 1e-3
#: the registered name of the method that wraps encoders given in Python
PYTHON_METHOD = "python"


class FrozenModuleMethod(Method):
    """A method that evaluates a module made elsewhere, frozen (``trainable`` False, nothing
    trained or re-estimated). The module is ``self.module`` (an ``nn.Module`` child, so the harness
    moves it to the device and switches its mode; a plain callable is kept as an attribute); its
    tensors are left out of :meth:`state_dict` (subclasses save what identifies or rebuilds it in
    their config or ``get_extra_state``)."""

    trainable = False
    role = "self-supervised"

    #: the wrapped encoder, ``[B, 3, S, S]`` float -> ``[B, D]``; None until a subclass sets it
    module: Callable[[torch.Tensor], torch.Tensor] | None

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped module's output for the preprocessed ``images``."""
        if self.module is None:
            raise UserError(f"method {self.name!r}: no encoder loaded")
        return self.module(images)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The state dict without the wrapped module's tensors (``module.*``)."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "") + "module."
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state dict made by :meth:`state_dict` (the wrapped module's tensors are not in it)."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith("module.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, "
                               f"unexpected keys {result.unexpected_keys}")
        return result


# ---- identifying an encoder -------------------------------------------------------------------

def _tensor_digest(h: Any, name: str, value: torch.Tensor) -> None:
    t = value.detach().cpu().contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def module_digest(module: nn.Module) -> str:
    """sha256 of a module's class and state dict (every tensor's name, dtype, shape and bytes);
    for a TorchScript module, of its saved archive (code and tensors)."""
    h = hashlib.sha256()
    if isinstance(module, torch.jit.ScriptModule):
        import io

        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        h.update(b"torchscript|" + buffer.getvalue())
        return h.hexdigest()
    h.update(f"module|{type(module).__module__}.{type(module).__qualname__}|".encode())
    for name, value in module.state_dict().items():
        if isinstance(value, torch.Tensor):
            _tensor_digest(h, name, value)
        else:
            h.update(f"{name}|{value!r}|".encode())
    return h.hexdigest()


def function_digest(fn: Callable[..., Any]) -> str:
    """sha256 of a plain callable: its qualified name, its code (bytecode, constants, names) and
    the modules, tensors and arrays it closes over or takes as defaults. Globals it reads are
    not covered: the probe-batch check of :func:`evaluate` catches an encoder changed that way."""
    h = hashlib.sha256()
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    if code is None:  # a callable object: its class's __call__
        target = type(fn).__call__
        code = getattr(target, "__code__", None)
    h.update(f"function|{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}|"
             .encode())
    if code is not None:
        h.update(code.co_code)
        h.update(repr(code.co_consts).encode())
        h.update(repr(code.co_names).encode())
    cells = [c.cell_contents for c in (getattr(target, "__closure__", None) or ()) if _has_contents(c)]
    values = cells + list(getattr(target, "__defaults__", None) or ())
    if hasattr(fn, "__self__"):
        values.append(fn.__self__)
    for i, value in enumerate(values):
        if isinstance(value, nn.Module):
            h.update(f"{i}|{module_digest(value)}|".encode())
        elif isinstance(value, torch.Tensor):
            _tensor_digest(h, str(i), value)
        elif isinstance(value, np.ndarray):
            _tensor_digest(h, str(i), torch.from_numpy(np.ascontiguousarray(value)))
    return h.hexdigest()


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def encoder_digest(encoder: Callable[[torch.Tensor], torch.Tensor], identity: str | None = None) -> str:
    """What identifies ``encoder`` in run ids, checkpoints and caches: :func:`module_digest` of an
    ``nn.Module``, :func:`function_digest` of any other callable, with ``identity`` (a version
    string of the caller's choosing) mixed in when given."""
    base = module_digest(encoder) if isinstance(encoder, nn.Module) else function_digest(encoder)
    if identity is None:
        return base
    return hashlib.sha256(f"{base}|identity|{identity}".encode()).hexdigest()


def probe_images(preprocess: Preprocess) -> torch.Tensor:
    """The fixed fingerprint batch: :data:`PROBE_BATCH` seeded uint8 noise images at the input
    size, through ``preprocess`` (float ``[B, 3, S, S]``)."""
    g = torch.Generator().manual_seed(PROBE_SEED)
    size = preprocess.input_size
    images = torch.randint(0, 256, (PROBE_BATCH, size, size, 3), generator=g, dtype=torch.uint8)
    return preprocess(images)


@torch.no_grad()
def probe_embeddings(encoder: Callable[[torch.Tensor], torch.Tensor], preprocess: Preprocess, *,
                     name: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 ``[PROBE_BATCH, D]`` embeddings of :func:`probe_images` by ``encoder`` (an
    ``nn.Module`` in eval mode, its mode restored), on ``device``, returned on the CPU. An output
    that is not a ``[B, D]`` tensor is one :class:`UserError` naming ``name`` and the shapes."""
    x = probe_images(preprocess).to(device)
    if isinstance(encoder, nn.Module):
        encoder.to(device)
        with eval_mode(encoder):
            z = encoder(x)
    else:
        z = encoder(x)
    if not isinstance(z, torch.Tensor):
        raise UserError(f"encoder {name!r}: returned {type(z).__name__} for a batch of {len(x)} images, "
                        f"expected a tensor of shape ({len(x)}, D)")
    if z.ndim != 2 or z.shape[0] != len(x):
        raise UserError(f"encoder {name!r}: returned shape {tuple(z.shape)} for a batch of shape {tuple(x.shape)}, "
                        f"expected ({len(x)}, D): one embedding row per image")
    return z.detach().float().cpu()


def same_embeddings(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two probe-batch embeddings are the same up to :data:`PROBE_TOLERANCE` of their scale."""
    if a.shape != b.shape:
        return False
    scale = float(max(a.abs().max(), b.abs().max(), 1e-12)) if a.numel() else 1.0
    return bool((a - b).abs().max() <= PROBE_TOLERANCE * scale) if a.numel() else True


@dataclass
class LiveEncoder:
    """An encoder given to :func:`evaluate` in this process: the callable and its probe embeddings."""

    encoder: Callable[[torch.Tensor], torch.Tensor]
    probe: torch.Tensor
    name: str


_LIVE: dict[str, LiveEncoder] = {}


def register_encoder(digest: str, live: LiveEncoder) -> None:
    """Make ``live`` the encoder of ``digest`` in this process (what the ``python`` method wraps)."""
    _LIVE[digest] = live


def registered_encoder(digest: str) -> LiveEncoder:
    """The encoder registered for ``digest``; one :class:`UserError` when this process has none
    (a run of an encoder given in Python is reused only from Python, through :func:`evaluate`)."""
    live = _LIVE.get(digest)
    if live is None:
        raise UserError(f"encoder {digest[:12]}... was given in Python (ssfbench.evaluate) in another process; "
                        "its runs are remade or reused only by calling ssfbench.evaluate with the encoder again")
    return live
