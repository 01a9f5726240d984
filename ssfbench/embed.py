"""Embedding: run a frozen encoder over every row of a labelled dataset, in dataset order.

Images are read by a torch ``DataLoader`` over batches of row indices (so adapters that can
read several rows at once, and worker processes, are used), resized to the method's input size
as uint8, and normalised on the device by the method's :class:`~ssfbench.preprocess.Preprocess`.

Batches always start at multiples of the batch size, so :func:`iter_embeddings` from a row
``start`` (a batch boundary) yields exactly the blocks an uninterrupted pass yields from there:
a resumed cache is bitwise the uninterrupted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from ssfbench.data import LabeledFrames
from ssfbench.errors import UserError
from ssfbench.preprocess import Preprocess, stack_resized


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


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode; restore each one's own mode on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _embed_batch(model: nn.Module, preprocess: Preprocess, images: torch.Tensor,
                 device: torch.device) -> np.ndarray:
    """float32 ``[B, D]`` embeddings of one uint8 ``[B, S, S, 3]`` batch."""
    x = preprocess(images.to(device, non_blocking=True))
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(device):
        z = model.embed(x)
    if z.ndim != 2 or z.shape[0] != images.shape[0]:
        raise ValueError(f"model.embed returned shape {tuple(z.shape)}; expected [{images.shape[0]}, D]")
    return z.float().cpu().numpy()


def iter_embeddings(model: nn.Module, preprocess: Preprocess, dataset: LabeledFrames, *,
                    batch_size: int = 256, device: str | torch.device = "cpu", num_workers: int = 0,
                    progress: bool = True, start: int = 0) -> Iterator[np.ndarray]:
    """float32 ``[B, D]`` blocks of the embeddings of rows ``start:`` of ``dataset``, one per batch,
    in dataset order (``start`` a multiple of ``batch_size``); see :func:`embed_frames`."""
    if len(dataset) == 0:
        raise UserError(f"dataset {getattr(dataset, 'name', '?')}: no frames to embed")
    if batch_size < 1:
        raise UserError(f"batch_size: expected a positive integer, got {batch_size}")
    device = torch.device(device)
    batches = _IndexBatches(dataset, batch_size, preprocess.input_size, start)
    loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    model.to(device)
    bar = tqdm(total=len(dataset), initial=start, unit="img", disable=not progress,
               desc=f"embed {getattr(dataset, 'name', '')}".strip())
    with bar, eval_mode(model):
        for images in loader:
            with torch.inference_mode():
                block = _embed_batch(model, preprocess, images, device)
            yield block
            bar.update(len(images))


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


__all__ = ["embed_frames", "iter_embeddings", "eval_mode"]
