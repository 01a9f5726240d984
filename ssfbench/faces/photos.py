"""``ssfbench faces align``: detect every face of some photos, align each on its 68 landmarks, and
write one crop per face plus ``faces.json`` (boxes, landmarks and source -> crop matrices) and,
optionally, a preview grid. The same detector (:mod:`ssfbench.faces.detection`) and alignment
(:mod:`ssfbench.faces.alignment`) prepare the faces of the real datasets.

``faces.json``::

    {"format": "ssfbench.faces/1", "image_size": 256, "margin": 0.0, "detector": {...},
     "images": [{"path": "...", "faces": [{"box": [x0, y0, x1, y1], "score": 1.2,
                 "landmarks": [[x, y], ... 68, source pixels, iBUG order],
                 "matrix": [[a, b, c], [d, e, f]], "crop": "<stem>-0.png"}]}]}

Faces are numbered largest first; every file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssfbench.errors import UserError
from ssfbench.faces.alignment import MARGIN, align
from ssfbench.runtime.fileio import atomic_write_bytes, atomic_write_json

FORMAT = "ssfbench.faces/1"
#: image files `faces align` picks up inside a folder argument
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class AlignReport:
    """What ``faces align`` did: the JSON written, the crops, and the images without a face."""

    index: dict
    crops: list[Path] = field(default_factory=list)
    without_face: list[Path] = field(default_factory=list)


def image_files(inputs: Iterable[Path]) -> list[Path]:
    """The image files named by ``inputs`` (files, or folders searched recursively for
    :data:`IMAGE_SUFFIXES`), in order; a missing path is a :class:`UserError`."""
    out: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise UserError(f"{path}: no such image or folder")
    if not out:
        raise UserError(f"no image files in {', '.join(map(str, inputs))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return out


def read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as uint8 RGB ``[H, W, 3]``; unreadable is a :class:`UserError`."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _unique_stems(paths: list[Path]) -> Iterator[str]:
    """Crop name stems: the file's stem, suffixed ``_2``, ``_3`` ... when two inputs share one."""
    seen: dict[str, int] = {}
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        yield path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}"


def align_faces(inputs: Iterable[Path], out: Path, *, image_size: int = 256, margin: float = MARGIN,
                detector=None, progress: bool = False) -> AlignReport:
    """Detect, align and write every face of the images ``inputs`` into the folder ``out`` (see the
    module docstring). Raises :class:`UserError` when no image had a face."""
    from tqdm.auto import tqdm

    from ssfbench.faces.detection import default_detector

    detector = detector or default_detector()
    paths = image_files(inputs)
    out.mkdir(parents=True, exist_ok=True)
    report = AlignReport(index={"format": FORMAT, "image_size": image_size, "margin": margin,
                                "detector": detector.record(), "images": []})
    for path, stem in zip(tqdm(paths, desc="faces", unit="image", disable=not progress), _unique_stems(paths)):
        image = read_rgb(path)
        faces = []
        for i, face in enumerate(detector.detect(image)):
            aligned = align(image, face.landmarks, image_size, margin)
            crop = out / f"{stem}-{i}.png"
            data = _png(aligned.crop)

            def write(tmp: str, data: bytes = data) -> None:
                Path(tmp).write_bytes(data)

            atomic_write_bytes(crop, write)
            report.crops.append(crop)
            faces.append({"box": [round(v, 2) for v in face.box], "score": round(face.score, 4),
                          "landmarks": face.landmarks.round(2).tolist(),
                          "matrix": aligned.matrix.round(6).tolist(), "crop": crop.name})
        if not faces:
            report.without_face.append(path)
        report.index["images"].append({"path": str(path), "faces": faces})
    atomic_write_json(out / "faces.json", report.index)
    if not report.crops:
        raise UserError(f"no face found in any of the {len(paths)} input image(s) "
                        f"(dlib's frontal detector; faces smaller than about 40 px are missed)")
    return report


def preview_grid(crops: list[Path], path: Path, columns: int = 8, cell: int = 128) -> Path:
    """A PNG grid of the aligned crops (with the template's eye line drawn) at ``path``."""
    from PIL import Image, ImageDraw

    from ssfbench.faces.alignment import template

    rows = max(1, -(-len(crops) // columns))
    grid = Image.new("RGB", (cell * min(columns, max(1, len(crops))), cell * rows), (255, 255, 255))
    eye_y = float(template(cell)[0, 1])
    for i, crop in enumerate(crops):
        with Image.open(crop) as im:
            tile = im.convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(tile)
        draw.line([(0, eye_y), (cell, eye_y)], fill=(0, 255, 0), width=1)
        grid.paste(tile, ((i % columns) * cell, (i // columns) * cell))
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
    return path


__all__ = ["FORMAT", "IMAGE_SUFFIXES", "AlignReport", "image_files", "read_rgb", "align_faces", "preview_grid"]
