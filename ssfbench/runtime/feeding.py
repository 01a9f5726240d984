"""How many CPU cores a GPU needs to be fed, and whether a run was held back by its data or its model.

The figures come from BENCHMARKS.md ("VoxCeleb2 from mp4"): the per-core rate of the VoxCeleb2
reader measured on this project's machine, and a GPU's ResNet-18 training rate at 224 px from
published tables (no GPU was lent to the session that measured the reader; ``ssfbench bench
--device cuda`` on one replaces the estimate with a measurement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """A throughput in frames (images) per second and where the number comes from."""

    frames_per_s: float
    source: str


#: ResNet-18 training at 224 px with mixed precision on one GPU. No published ResNet-18 training
#: figure for an H100/H200 was found; this is the A100 estimate from two published tables, which a
#: newer GPU can only exceed, so the cores it implies are a lower bound for an H100/H200:
#: NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5 README, "Training performance: NVIDIA DGX
#: A100 (8x A100 80GB)", 1 GPU, mixed precision: 2,470 img/s (pytorch-21.03 NGC container), times
#: the ResNet-18 / ResNet-50 ratio of timm's results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv
#: (resnet18 3,481.78, resnet50 1,218.01 train samples/s; AMP, channels-last, batch 512, 224 px):
#: 2,470 x 2.859 = 7,061 img/s.
GPU_RESNET18_224 = Rate(7061.0, "A100-80GB estimate: NVIDIA DLE ResNet-50 v1.5 AMP 2,470 img/s x timm RTX 3090 "
                                "resnet18/resnet50 train ratio 3,481.78/1,218.01 (a lower bound for H100/H200)")

#: Frames per second one core delivers to pretraining from VoxCeleb2-layout H.264 (224 px, 25 fps,
#: keyframe every 4 s) with the default reader (one decoding pass per visit, 4 windows of the
#: ranking method's 12 frames each): BENCHMARKS.md, "VoxCeleb2 from mp4".
VOXCELEB2_FRAMES_PER_CORE = Rate(637.1, "BENCHMARKS.md, VoxCeleb2 from mp4: 53.1 windows/s x 12 frames, one core")

#: The share of a step's wall time spent waiting for data above which the data pipeline, not the
#: model, is called the bottleneck.
DATA_BOUND_WAIT = 0.1


def cores_per_gpu(gpu: Rate = GPU_RESNET18_224, reader: Rate = VOXCELEB2_FRAMES_PER_CORE) -> float:
    """Cores that decode as many frames per second as ``gpu`` trains on."""
    return gpu.frames_per_s / reader.frames_per_s


def cuda_workers(cores: int, gpus: int) -> int:
    """DataLoader workers per GPU process: as many as the GPU needs at the measured per-core rate
    of the slowest source (VoxCeleb2 from mp4), but at most the process's share of the cores less
    one for the training loop itself; at least one."""
    share = cores // max(1, gpus)
    return max(1, min(math.ceil(cores_per_gpu()), share - 1))


def bottleneck(wait_s: float, busy_s: float) -> str:
    """``"data"`` when the loop waited for batches more than :data:`DATA_BOUND_WAIT` of its
    training-path time, else ``"model"``."""
    return "data" if busy_s > 0 and wait_s / busy_s > DATA_BOUND_WAIT else "model"


__all__ = ["Rate", "GPU_RESNET18_224", "VOXCELEB2_FRAMES_PER_CORE", "DATA_BOUND_WAIT", "cores_per_gpu",
           "cuda_workers", "bottleneck"]
