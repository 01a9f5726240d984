"""``ssfbench faces align``: detect every face of some photos, align each on its 68 landmarks, and
write one crop per face plus ``faces.json`` (boxes, landmarks and source -> crop matrices) and,
optionally, a preview grid. The same detector (:mod:`ssfbench.faces.detection`) and alignment
(:mod:`ssfbench.faces.alignment`) prepare the faces of the real datasets.

``faces.json``::

    {"format": "ssfbench.faces/1", "image_size": 256, "margin": 0.0, "detector": {...},
     "images": [{"path": "...", "faces": [{"box": [x0, y0, x1, y1], "score": 1.2,
                 "landmarks": [[x, y], ... 68, source pixels, iBUG order],
                 "matrix": [[a, b, c], [d, e, f]], "crop": "<stem>-0.png"}]}]}

Faces are numbered largest first; every file is written atomically. Crop names are unique across
all inputs (``x.jpg`` in two folders gives ``x-0.png`` and ``x_3-0.png`` when an ``x_2.jpg`` is
among them too). The output folder is never read as input. An unreadable image is skipped and
named; ``faces.json`` is replaced only once every crop it describes is written (a rerun first
removes the previous run's index and the crops it lists, so no index ever describes replaced crops).
Images are read upright and 16-bit grey scaled to 8 bits, exactly as the datasets' frames are
(:func:`ssfbench.faces.images.oriented_rgb`).
"""

from __future__ import annotations

import io
import json
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
    #: images skipped because they could not be read, with why
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _inside(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` lies in ``folder`` (both resolved)."""
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def image_files(inputs: Iterable[Path], exclude: Path | None = None) -> list[Path]:
    """The image files named by ``inputs`` (files, or folders searched recursively for
    :data:`IMAGE_SUFFIXES`), in order, each once, none inside ``exclude`` (the output folder: a
    rerun never aligns its own crops); a missing path is a :class:`UserError`."""
    inputs = [Path(p) for p in inputs]
    out: list[Path] = []
    for path in inputs:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                              and not _inside(p, exclude)))
        elif path.is_file():
            out.append(path)
        else:
            raise UserError(f"{path}: no such image or folder")
    out = list(dict.fromkeys(out))
    if not out:
        skipped = f" outside the output folder {exclude}" if exclude is not None else ""
        raise UserError(f"no image files{skipped} in {', '.join(map(str, inputs))} "
                        f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    return out


def read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as upright uint8 RGB ``[H, W, 3]``, read as the datasets' frames are
    (:func:`ssfbench.faces.images.read_rgb`); unreadable is a :class:`UserError`."""
    from ssfbench.faces.images import read_rgb as read_frame

    return read_frame(path)[0]


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _unique_stems(paths: list[Path]) -> Iterator[str]:
    """Crop name stems, unique (also on case-insensitive file systems): the file's stem, or for a
    later input with a stem already taken, the stem suffixed ``_2``, ``_3`` ... skipping every
    suffix that is another input's own stem."""
    natural = {p.stem.casefold() for p in paths}
    taken: set[str] = set()
    for path in paths:
        stem, n = path.stem, 1
        while stem.casefold() in taken or (n > 1 and stem.casefold() in natural):
            n += 1
            stem = f"{path.stem}_{n}"
        taken.add(stem.casefold())
        yield stem


def _remove_previous(out: Path) -> None:
    """Remove the index of an earlier run into ``out`` and the crops it lists (only files directly
    in ``out``), so that no ``faces.json`` ever describes crops that were replaced since."""
    index = out / "faces.json"
    if not index.is_file():
        return
    try:
        old = json.loads(index.read_text())
        crops = [f["crop"] for image in old.get("images", []) for f in image.get("faces", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        crops = []  # not ours or damaged: replaced below, nothing else touched
    index.unlink()
    for name in crops:
        crop = out / str(name)
        if isinstance(name, str) and crop.parent == out and crop.suffix == ".png" and crop.is_file():
            crop.unlink()


def align_faces(inputs: Iterable[Path], out: Path, *, image_size: int = 256, margin: float = MARGIN,
                detector=None, progress: bool = False) -> AlignReport:
    """Detect, align and write every face of the images ``inputs`` into the folder ``out`` (see the
    module docstring; files inside ``out`` are not inputs). Unreadable images are skipped and
    listed in the report (and in ``faces.json`` with ``"error"``); the report's ``crops`` is empty
    when no image had a face (the caller decides whether that is an error)."""
    from tqdm.auto import tqdm

    from ssfbench.faces.detection import default_detector

    out = Path(out)
    paths = image_files(inputs, exclude=out)
    detector = detector or default_detector()
    out.mkdir(parents=True, exist_ok=True)
    _remove_previous(out)
    report = AlignReport(index={"format": FORMAT, "image_size": image_size, "margin": margin,
                                "detector": detector.record(), "images": []})
    for path, stem in zip(tqdm(paths, desc="faces", unit="image", disable=not progress), _unique_stems(paths)):
        try:
            image = read_rgb(path)
        except UserError as exc:
            why = str(exc).split(": ", 1)[-1]
            report.unreadable.append((path, why))
            report.index["images"].append({"path": str(path), "faces": [], "error": why})
            continue
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
