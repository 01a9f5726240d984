"""Faces per second on one core: alignment from given landmarks (decode + warp) and detect-plus-
align (decode + dlib detection + 68 landmarks + warp) on a BP4D-sized JPEG (1392 x 1040, the
astronaut upscaled), beside the frozen encoder's forward pass (ResNet-18, 256-d embedding) at the
same crop size. Run with one thread:

    OMP_NUM_THREADS=1 taskset -c 0 python tests/bench/faces_throughput.py [--image-size 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data

from ssfbench.faces.alignment import alignment_matrix
from ssfbench.faces.detection import Detector
from ssfbench.faces.images import read_aligned, read_rgb
from ssfbench.faces.photos import align
from ssfbench.nn.encoders import Encoder


def rate(fn, seconds: float = 5.0) -> float:
    """Calls of ``fn`` per second, over at least ``seconds`` (after one warm-up call)."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=256)
    size = parser.parse_args().image_size
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.jpg"
        Image.fromarray(data.astronaut()).resize((1392, 1040), Image.BICUBIC).save(path, quality=90)
        detector = Detector()
        landmarks = detector.detect(read_rgb(path)[0])[0].landmarks
        matrix = alignment_matrix(landmarks, size)

        def detect_align() -> None:
            image = read_rgb(path)[0]
            align(image, detector.detect(image)[0].landmarks, size)

        encoder = Encoder("resnet18").eval()
        batch = torch.randn(16, 3, size, size)

        def forward() -> None:
            with torch.no_grad():
                encoder(batch)

        rows = [("decode + align from given landmarks", rate(lambda: read_aligned(path, matrix, size))),
                ("decode + detect + 68 landmarks + align", rate(detect_align)),
                (f"ResNet-18 forward at {size} px (batch 16)", 16 * rate(forward))]
    print(f"| step (one core, {size} px crops, 1392x1040 JPEG) | frames/s |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
