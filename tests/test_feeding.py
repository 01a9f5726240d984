"""Sizing the data pipeline for a GPU (:mod:`ssfbench.runtime.feeding`) and the bottleneck verdict."""

from __future__ import annotations

import math

from ssfbench.runtime.feeding import (
    GPU_RESNET18_224,
    VOXCELEB2_FRAMES_PER_CORE,
    Rate,
    bottleneck,
    cores_per_gpu,
    cuda_workers,
)


def test_cores_per_gpu_is_the_ratio_of_the_rates():
    assert cores_per_gpu(Rate(1000.0, "gpu"), Rate(250.0, "core")) == 4.0
    assert cores_per_gpu() == GPU_RESNET18_224.frames_per_s / VOXCELEB2_FRAMES_PER_CORE.frames_per_s


def test_cuda_workers_size_to_the_need_but_never_past_the_cores():
    need = math.ceil(cores_per_gpu())
    assert cuda_workers(cores=need + 10, gpus=1) == need
    assert cuda_workers(cores=16, gpus=8) == 1  # 2 cores per GPU: one for the loop, one worker
    assert cuda_workers(cores=4, gpus=1) == 3
    assert cuda_workers(cores=1, gpus=4) == 1


def test_bottleneck():
    assert bottleneck(wait_s=0.5, busy_s=10.0) == "model"
    assert bottleneck(wait_s=2.0, busy_s=10.0) == "data"
    assert bottleneck(wait_s=0.0, busy_s=0.0) == "model"
