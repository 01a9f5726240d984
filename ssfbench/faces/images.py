"""Face crops from image files: read an image with Pillow (JPEG decoded at a reduced scale when that
is enough), either align it on landmarks (:mod:`ssfbench.faces.alignment`) or cut a square face box (the
dataset's box, else the centre square) and resize it to the adapter's output size; check that
images decode; decode several in threads.

Every image of the harness (the datasets' frames and ``ssfbench faces align``'s photos) is read by
:func:`oriented_rgb`: turned upright by its EXIF orientation tag, and 16-bit grey scaled to 8 bits
(Pillow alone would clip it to white); a float image is refused naming the file."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ssfbench.errors import UserError

#: Threads that decode images (Pillow releases the GIL while decoding).
THREADS = min(4, os.cpu_count() or 1)

Box = tuple[float, float, float, float]  # left, top, right, bottom in original-image pixels


def center_box(width: int, height: int) -> Box:
    """The largest centred square of a ``width`` x ``height`` image."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def square_box(x: float, y: float, w: float, h: float, scale: float = 1.0) -> Box:
    """The square of side ``max(w, h) * scale`` centred on the box ``x, y, w, h``."""
    cx, cy = x + w / 2, y + h / 2
    half = max(w, h) * scale / 2
    return (cx - half, cy - half, cx + half, cy + half)


def crop_resize(image: Image.Image, box: Box, size: int) -> np.ndarray:
    """``box`` of ``image`` (RGB) resized to ``size`` x ``size`` (antialiased bilinear) as uint8
    ``[size, size, 3]``; parts of the box outside the image are black."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        out = image.resize((size, size), Image.BILINEAR, box=(left, top, right, bottom))
    else:
        out = image.crop((round(left), round(top), round(right), round(bottom))).resize((size, size), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


#: EXIF orientations that swap width and height (transposed or rotated by 90 / 270 degrees)
_SWAPS = (5, 6, 7, 8)


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the opened image ``im`` once turned upright by its EXIF orientation."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):
        orientation = 1
    return (im.size[1], im.size[0]) if orientation in _SWAPS else im.size


def oriented_rgb(im: Image.Image, where: str | Path) -> Image.Image:
    """The opened image ``im`` (at ``where``) as an upright 8-bit RGB image: the EXIF orientation
    applied, 16-bit grey (Pillow's ``I;16`` modes, or ``I`` holding values up to 65535) scaled to
    8 bits. A float image (mode ``F``) or a 32-bit one beyond 16-bit values is a :class:`UserError`
    naming the file (Pillow would clip it to white)."""
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        low, top = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or top > 65535:
            raise UserError(f"{where}: {im.mode} image with values outside 0..65535; expected 8- or 16-bit pixels")
        if im.mode.startswith("I;16") or top > 255:
            values = (values + 128) // 257  # 0..65535 -> 0..255, rounded
        im = Image.fromarray(values.astype(np.uint8))
    elif im.mode == "F":
        raise UserError(f"{where}: 32-bit float image; expected 8- or 16-bit pixels (save it as PNG or JPEG)")
    return im if im.mode == "RGB" else im.convert("RGB")


def read_face(path: str | Path, box: Box | None, size: int) -> np.ndarray:
    """The face crop of the image at ``path``: ``box`` (pixels of the upright image; ``None`` =
    centre square) resized to ``size``. JPEGs are decoded at the smallest scale that still covers
    ``size``. A missing or corrupt file is a :class:`UserError` naming it."""
    try:
        with Image.open(path) as im:
            width, height = oriented_size(im)
            box = box if box is not None else center_box(width, height)
            side = max(box[2] - box[0], box[3] - box[1], 1.0)
            if im.format == "JPEG":
                factor = min(1.0, size / side)
                im.draft("RGB", (max(1, math.ceil(im.size[0] * factor)), max(1, math.ceil(im.size[1] * factor))))
            rgb = oriented_rgb(im, path)
            rx, ry = rgb.size[0] / width, rgb.size[1] / height
            return crop_resize(rgb, (box[0] * rx, box[1] * ry, box[2] * rx, box[3] * ry), size)
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def read_rgb(path: str | Path, reduce_to: float = 1.0) -> tuple[np.ndarray, float]:
    """The image at ``path`` as upright uint8 RGB (:func:`oriented_rgb`) and the factor its pixels
    were scaled by: JPEGs are decoded at the smallest draft scale still at least ``reduce_to`` of
    full size (1 = full). A missing or corrupt file is a :class:`UserError` naming it."""
    try:
        with Image.open(path) as im:
            width = oriented_size(im)[0]
            if im.format == "JPEG" and reduce_to < 1.0:
                im.draft("RGB", (max(1, math.ceil(im.size[0] * reduce_to)), max(1, math.ceil(im.size[1] * reduce_to))))
            rgb = oriented_rgb(im, path)
            return np.asarray(rgb), rgb.size[0] / width
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def read_aligned(path: str | Path, matrix: np.ndarray, size: int) -> np.ndarray:
    """The image at ``path`` warped by the source -> crop ``matrix`` into ``size`` x ``size``; JPEGs
    are decoded at the reduced scale the crop allows (the matrix rescaled to it)."""
    from ssfbench.faces.alignment import warp

    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))
    image, factor = read_rgb(path, reduce_to=min(1.0, 2.0 * scale))
    if factor != 1.0:  # a pixel centre x of the full image sits at (x + 0.5) * factor - 0.5 in the draft
        to_full = np.array([[1 / factor, 0, 0.5 / factor - 0.5], [0, 1 / factor, 0.5 / factor - 0.5], [0, 0, 1]])
        matrix = np.vstack([matrix, [0, 0, 1]]) @ to_full
    return warp(image, np.asarray(matrix)[:2], size)


def check_image(path: str | Path) -> str | None:
    """``None`` when the image at ``path`` decodes completely, else why not (decoded at a reduced
    scale where the format allows, so a check costs a fraction of a full read)."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            oriented_rgb(im, path)
    except FileNotFoundError:
        return "not found"
    except UserError as exc:
        return str(exc).split(": ", 1)[-1]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable ({exc})"
    return None


def thread_map(fn: Callable[[Any], Any], items: Sequence[Any], threads: int = THREADS) -> list[Any]:
    """``[fn(x) for x in items]`` computed by up to ``threads`` threads (in order; the first
    exception is raised)."""
    if len(items) < 4 or threads < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def sample_indices(n: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """All of ``range(n)`` when ``sample`` is None or 0 or at least ``n``, else ``sample`` of them
    chosen at random (seeded), sorted."""
    if not sample or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


__all__ = ["THREADS", "Box", "center_box", "square_box", "crop_resize", "oriented_size", "oriented_rgb", "read_face",
           "read_rgb",
           "read_aligned", "check_image",
           "thread_map", "sample_indices"]
