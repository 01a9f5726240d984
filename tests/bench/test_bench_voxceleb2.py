"""Issue 16: the reader the harness uses by default for VoxCeleb2 is faster per core than the one
before it, on VoxCeleb2-layout H.264 clips at 224 px with a keyframe every 4 s (``tox -e bench``;
BENCHMARKS.md, "VoxCeleb2 from mp4", has the numbers). Both readers are measured in the same run,
alternating, three rounds each, on one pinned core; the test asserts the median of the per-round
ratios, never a time."""

from __future__ import annotations

import pytest
import torch

from ssfbench.api.registry import get_method
from ssfbench.bench.decode_speed import compare_readers, write_h264_clips
from ssfbench.datasets.voxceleb2 import VoxCeleb2


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_h264_clips(tmp_path_factory.mktemp("bench-vox") / "VoxCeleb2", clips=16, frames=200)


def test_the_default_voxceleb2_reader_is_faster_per_core_than_before(benchmark, clips):
    torch.manual_seed(0)
    method = get_method("ranking")(get_method("ranking").Config(k=2), image_size=224)
    default = VoxCeleb2.OPTIONS["windows_per_visit"].default
    rows = benchmark.pedantic(lambda: compare_readers(clips, method, windows=64, rounds=3, per_visit=(default,)),
                              rounds=1, iterations=1)
    before, now = rows
    benchmark.extra_info.update(before_windows_per_s=round(before["windows_per_s"], 1),
                                now_windows_per_s=round(now["windows_per_s"], 1), speedup=round(now["speedup"], 3),
                                before_decoded_per_used=round(before["decoded_per_used"], 2),
                                now_decoded_per_used=round(now["decoded_per_used"], 2))
    assert now["new"] and not before["new"]
    assert now["speedup"] > 1.0
    assert now["decoded_per_used"] < before["decoded_per_used"]
