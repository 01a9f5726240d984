"""Regenerate ``docs/faces.png``, the README's grid of aligned real faces: scikit-image's
``astronaut()`` and the first 15 faces of ``lfw_subset()`` (25 x 25, upscaled 4x) are written to a
temporary folder and run through ``ssfbench faces align --preview``.

    python docs/faces_grid.py docs/faces.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from ssfbench.cli import main


def write_photos(folder: Path) -> None:
    """The astronaut and 15 LFW faces as PNG files in ``folder``."""
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    faces = data.lfw_subset()[:15]
    for i, face in enumerate(faces):
        grey = Image.fromarray((face * 255).astype(np.uint8)).convert("RGB")
        grey.resize((100, 100), Image.BICUBIC).save(folder / f"lfw{i:02d}.png")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/faces.png")
    with tempfile.TemporaryDirectory() as tmp:
        photos, out = Path(tmp) / "photos", Path(tmp) / "aligned"
        photos.mkdir()
        write_photos(photos)
        main(["faces", "align", str(photos), "--out", str(out), "--image-size", "128", "--quiet",
              "--preview", str(target)])
