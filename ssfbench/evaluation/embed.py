"""Embedding: run a frozen encoder over every row of a labelled dataset, in dataset order.

Images are read by a torch ``DataLoader`` over batches of row indices (so adapters that can
read several rows at once, and worker processes, are used), resized to the method's input size
as uint8, and normalised on the device by the method's :class:`~ssfbench.api.preprocess.Preprocess`.

Batches always start at multiples of the batch size, so :func:`iter_embeddings` from a row
``start`` (a batch boundary) yields exactly the blocks an uninterrupted pass yields from there:
a resumed cache is bitwise the uninterrupted one.

Under torchrun, :func:`sharded_embeddings` (rank 0) and :func:`serve_embedding_shards` (the other
ranks) split the batches over the ranks with ``DistributedSampler`` (batch ``i`` on rank
``i mod world``) and gather every round of blocks on rank 0 in dataset order, so rank 0 writes
the same blocks a single process would, into one cache.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from ssfbench.api.dataset import LabeledFrames
from ssfbench.api.method import Method, eval_mode
from ssfbench.api.preprocess import Preprocess, stack_resized
from ssfbench.errors import UserError
from ssfbench.runtime import distributed
from ssfbench.runtime.device import autocast
from ssfbench.runtime.prefetch import prefetched


class _IndexBatches(TorchDataset):
    """Item ``i`` is the uint8 ``[B, S, S, 3]`` tensor of the ``i``-th batch of rows."""

    def __init__(self, dataset: LabeledFrames, batch_size: int, size: int, start: int = 0) -> None:
        self.dataset = dataset
        self.size = size
        if start % batch_size and start != len(dataset):
            raise ValueError(f"start row {start} is not a multiple of the batch size {batch_size}")
        batches = np.array_split(np.arange(len(dataset)), range(batch_size, len(dataset), batch_size))
        self.batches = batches[start // batch_size:]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor:
        images = self.dataset.read_images(self.batches[i].tolist())
        return torch.from_numpy(stack_resized(images, self.size))


def _embed_batch(model: nn.Module, preprocess: Preprocess, images: torch.Tensor,
                 device: torch.device) -> np.ndarray:
    """float32 ``[B, D]`` embeddings of one uint8 ``[B, S, S, 3]`` batch."""
    x = preprocess(images.to(device, non_blocking=True))
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device):
        z = model.embed(x)
    if z.ndim != 2 or z.shape[0] != images.shape[0]:
        name = model.name if isinstance(model, Method) else type(model).__name__
        raise UserError(f"method {name!r}: embed returned shape {tuple(z.shape)} for a batch of {images.shape[0]} "
                        f"images, expected ({images.shape[0]}, D): one row per image, whatever the batch size")
    return z.float().cpu().numpy()


def iter_embeddings(model: nn.Module, preprocess: Preprocess, dataset: LabeledFrames, *,
                    batch_size: int = 256, device: str | torch.device = "cpu", num_workers: int = 0,
                    progress: bool = True, start: int = 0, shard: tuple[int, int] = (0, 1)) -> Iterator[np.ndarray]:
    """float32 ``[B, D]`` blocks of the embeddings of rows ``start:`` of ``dataset``, one per batch,
    in dataset order (``start`` a multiple of ``batch_size``); see :func:`embed_frames`.
    ``shard = (i, n)``: only batches ``i, i + n, ...`` (``DistributedSampler`` order: the last round
    is padded with the first batches so that every shard yields as many blocks)."""
    if len(dataset) == 0:
        raise UserError(f"dataset {getattr(dataset, 'name', '?')}: no frames to embed")
    if batch_size < 1:
        raise UserError(f"batch_size: expected a positive integer, got {batch_size}")
    device = torch.device(device)
    batches = _IndexBatches(dataset, batch_size, preprocess.input_size, start)
    sampler = None
    if shard[1] > 1:
        sampler = DistributedSampler(batches, num_replicas=shard[1], rank=shard[0], shuffle=False)
    loader = DataLoader(batches, batch_size=None, shuffle=False, sampler=sampler, num_workers=num_workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if num_workers else None)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    bar = tqdm(total=len(dataset), initial=start, unit="img", disable=not progress,
               desc=f"embed {getattr(dataset, 'name', '')}".strip())
    with bar, eval_mode(model):
        for images in loader if num_workers else prefetched(loader):
            with torch.inference_mode():
                block = _embed_batch(model, preprocess, images, device)
            yield block
            bar.update(len(images))


def sharded_embeddings(model: nn.Module, preprocess: Preprocess, dataset: LabeledFrames, *,
                       batch_size: int = 256, device: str | torch.device = "cpu", num_workers: int = 0,
                       progress: bool = True, start: int = 0) -> Iterator[np.ndarray]:
    """Rank 0 under torchrun: what :func:`iter_embeddings` yields from ``start``, computed by every
    rank (each running :func:`serve_embedding_shards`) and gathered here in dataset order."""
    world = distributed.world()
    distributed.broadcast_object(start)
    remaining = -(-(len(dataset) - start) // batch_size)
    own = iter_embeddings(model, preprocess, dataset, batch_size=batch_size, device=device,
                          num_workers=num_workers, progress=False, start=start, shard=(world.rank, world.size))
    bar = tqdm(total=len(dataset), initial=start, unit="img", disable=not progress,
               desc=f"embed {getattr(dataset, 'name', '')} on {world.size} processes".strip())
    with bar:
        for round_, block in enumerate(own):
            gathered = distributed.gather_object(block)
            for r, part in enumerate(gathered or []):
                if round_ * world.size + r < remaining:  # beyond: DistributedSampler's padding
                    bar.update(len(part))
                    yield part


def serve_embedding_shards(model: nn.Module, preprocess: Preprocess, dataset: LabeledFrames, *,
                           batch_size: int = 256, device: str | torch.device = "cpu", num_workers: int = 0) -> None:
    """Ranks other than 0 under torchrun: compute this rank's batches each time rank 0 asks (it
    broadcasts the start row; ``None`` means done) and send them to rank 0."""
    world = distributed.world()
    while (start := distributed.broadcast_object(None)) is not None:
        for block in iter_embeddings(model, preprocess, dataset, batch_size=batch_size, device=device,
                                     num_workers=num_workers, progress=False, start=start,
                                     shard=(world.rank, world.size)):
            distributed.gather_object(block)


def constant_embeddings(x: np.ndarray) -> bool:
    """True when every row of ``x`` (``[N, D]``, N >= 2) is the same vector: an encoder that ignores
    its input, whose probe scores are a constant guess (e.g. every AU predicted present)."""
    return len(x) > 1 and bool((x == x[:1]).all())


def embed_frames(model: nn.Module, preprocess: Preprocess, dataset: LabeledFrames, *,
                 batch_size: int = 256, device: str | torch.device = "cpu", num_workers: int = 0,
                 progress: bool = True) -> np.ndarray:
    """float32 ``[N, D]`` embeddings ``model.embed(preprocess(image))`` of every row of
    ``dataset``, in dataset order.

    The model is moved to ``device`` and run in eval mode under ``torch.inference_mode()`` (on
    CUDA with bf16 autocast, channels-last input, pinned memory and non-blocking copies); the
    train/eval mode of each submodule is restored afterwards, so BatchNorm statistics are never
    updated. An empty dataset raises :class:`UserError`.
    """
    out = list(iter_embeddings(model, preprocess, dataset, batch_size=batch_size, device=device,
                               num_workers=num_workers, progress=progress))
    return np.concatenate(out).astype(np.float32, copy=False)


__all__ = ["constant_embeddings", "embed_frames", "iter_embeddings", "sharded_embeddings", "serve_embedding_shards"]
