"""Outside encoders: a module or function made elsewhere, evaluated frozen by the harness's own
pipeline (:func:`evaluate`, exported as ``ssfbench.evaluate``; the rows it writes are read back by
:func:`ssfbench.report.leaderboard.leaderboard`, exported as ``ssfbench.leaderboard``).

An outside encoder becomes a run of the ``python`` method (``methods/python_encoder.py``), whose
config names the encoder by a content digest (:func:`encoder_digest`): the run id, checkpoint and
embedding caches are keyed by it, so a cache made by one encoder is never read for another. The
encoder itself stays in this process (:func:`ssfbench.api.wrapped.register_encoder`); its checkpoint holds no weights,
only the digest, the preprocessing and the encoder's embeddings of a fixed probe batch
(:data:`PROBE_BATCH` seeded noise images), which are compared with the live encoder's whenever the
run is reused: an encoder that changed while its digest did not (a plain function whose closure
or globals changed, for instance) is refused with one :class:`~ssfbench.errors.UserError`, never
silently given the old caches.

What identifies and wraps such an encoder (digests, the probe batch, the frozen-module method
base the ``python`` and ``torchscript`` plugins build on) is :mod:`ssfbench.api.wrapped`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssfbench.api.preprocess import Preprocess
from ssfbench.api.wrapped import (
    PYTHON_METHOD,
    LiveEncoder,
    encoder_digest,
    probe_embeddings,
    register_encoder,
)
from ssfbench.errors import UserError
from ssfbench.results.records import Result


def _label(encoder: Callable[..., Any]) -> str:
    """The ``backbone`` column of an outside encoder's row: its class (or function) name, file-name safe."""
    raw = type(encoder).__name__ if isinstance(encoder, nn.Module) else getattr(encoder, "__name__", type(encoder).__name__)
    return re.sub(r"[^A-Za-z0-9_.]+", "_", raw).strip("_") or "encoder"


# ---- the API ------------------------------------------------------------------------------------

def evaluate(encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor], *, name: str,
             datasets: Sequence[str] = ("synth-au", "synth-expr"), roots: Mapping[str, str | Path] | None = None,
             preprocess: Preprocess | None = None, out: str | Path = "ssfbench-out", seeds: int | Sequence[int] = (0,),
             device: str = "auto", identity: str | None = None, image_size: int | None = None,
             data_options: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
             overwrite: str = "only-missing", workers: int | str = "auto") -> list[Result]:
    """Evaluate a frozen outside encoder as ``ssfbench run`` evaluates a method: embed every image of
    ``datasets`` into the HDF5 caches, fit the protocol's probe on its folds for each seed, write
    the results JSON files and leaderboard rows under ``out`` (``ssfbench compare --out OUT`` shows
    them beside the paper's and the committed rows), and return the results (dataset outer, then
    seed; one per pair).

    ``encoder``: an ``nn.Module`` (run in eval mode, its modes restored; it is moved to ``device`` in
    place) or any callable mapping a float batch ``[B, 3, S, S]`` (the images after ``preprocess``)
    to embeddings ``[B, D]`` (a tensor on the same device). ``name`` is the row's name in tables.
    ``preprocess`` (default ``Preprocess(input_size=image_size or 64)``, ImageNet mean and std) is
    how images become input; ``image_size`` is the size the datasets are read (rendered, for the
    synthetic ones) at, by default the preprocessing's input size.

    What identifies the encoder (run id, checkpoint, caches) is :func:`ssfbench.api.wrapped.encoder_digest`: an
    ``nn.Module``'s class and weights, a TorchScript module's archive, a function's code and the
    modules/tensors it closes over, plus ``identity`` when given (give one for a function whose
    behaviour depends on globals or files). A reused run is also checked against the encoder's
    embeddings of a fixed probe batch: an encoder that changed under the same digest is refused
    (one :class:`~ssfbench.errors.UserError`; give a new ``identity``), never given old caches.

    ``roots`` = ``--root`` (``{dataset: path}``), ``data_options`` = ``--data-option``
    (``{dataset: {key: value}}``), ``seeds`` the probe's seeds, ``device`` ``auto``/``cpu``/``cuda[:N]``,
    ``overwrite`` the embedding-cache policy of ``ssfbench run --overwrite``, ``workers`` the image
    reader processes (a count, or ``"auto"`` as ``--workers auto``)."""
    from ssfbench.pipeline.spec import DEFAULT_IMAGE_SIZE
    from ssfbench.pipeline.sweep import base_spec, sweep
    from ssfbench.runtime.device import resolve_device, resolve_workers

    if not isinstance(name, str) or not name.strip():
        raise UserError(f"evaluate: name must be a non-empty string (the row's name), got {name!r}")
    if not callable(encoder):
        raise UserError(f"evaluate: encoder must be an nn.Module or a callable, got {type(encoder).__name__}")
    if preprocess is None:
        preprocess = Preprocess(input_size=image_size or DEFAULT_IMAGE_SIZE)
    if not isinstance(preprocess, Preprocess):
        raise UserError(f"evaluate: preprocess must be a ssfbench.Preprocess, got {type(preprocess).__name__}")
    if isinstance(datasets, str):
        datasets = (datasets,)
    seed_list = (seeds,) if isinstance(seeds, int) else tuple(seeds)
    if not seed_list:
        raise UserError("evaluate: seeds must name at least one seed")
    digest = encoder_digest(encoder, identity)
    probe = probe_embeddings(encoder, preprocess, name=name, device=resolve_device(device))
    register_encoder(digest, LiveEncoder(encoder=encoder, probe=probe, name=name))
    settings = {"name": name.strip(), "digest": digest, "embed_dim": int(probe.shape[1]),
                "preprocess": preprocess.to_json()}
    base = base_spec(PYTHON_METHOD, image_size=image_size or preprocess.input_size, backbone=_label(encoder),
                     datasets=tuple(datasets), roots=roots, data_options=data_options, settings=settings, out=out,
                     device=device, num_workers=resolve_workers(workers, device), progress=progress,
                     overwrite=overwrite,
                     argv=("ssfbench.evaluate", f"name={name}", f"digest={digest}"))
    results = sweep(base, seeds=seed_list).results
    return sorted(results, key=lambda r: (tuple(base.datasets).index(r.dataset), seed_list.index(r.seed)))


__all__ = ["evaluate"]
