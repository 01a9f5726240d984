"""Face geometry: similarity alignment of a face to a canonical five-point template.

The template (eye centres, nose tip, mouth corners; in units of the crop side) is the one the
paper's peers align to (JAA-Net / ME-GraphAU style). A landmark set
of any supported scheme is reduced to those five points (:func:`five_points`), the least-squares
similarity transform (rotation, isotropic scale, translation; Umeyama, scikit-image's
:class:`~skimage.transform.SimilarityTransform`) from the image onto the template is estimated
(:func:`alignment_matrix`), and the image is warped into a square of the run's image size
(:func:`warp`). The 2x3 source -> crop matrix is what a caller keeps per image.

Schemes (0-based indices, the dataset's own order):

* 68 points, iBUG / dlib order (AffectNet's csv, dlib's predictor);
* 66 points, the 68 without the inner-mouth corners 60 and 64 (DISFA's ``Landmark_Points``);
* 49 points, the 68 without the 17 jaw points and the inner-mouth corners (IntraFace; BP4D as
  JAA-Net and ME-GraphAU users have it);
* 5 points, already the template's order (eye centres, nose tip, mouth corners).

``margin`` is the named setting for how much context surrounds the face: the template is shrunk
about the crop centre by ``1 / (1 + margin)``, so 0.25 shows a quarter more of the face's
surroundings on every side than the template itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The five template points in units of the crop side, (x, y): the subject's right eye centre
#: (image left), left eye centre, nose tip, right and left mouth corners.
TEMPLATE = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.58], [0.38, 0.72], [0.62, 0.72]], np.float64)
#: Default margin (0 = the template as given).
MARGIN = 0.0

#: Per scheme (number of points): (right-eye points, left-eye points, nose tip, mouth right, mouth left).
_SCHEMES: dict[int, tuple[range, range, int, int, int]] = {
    68: (range(36, 42), range(42, 48), 30, 48, 54),
    66: (range(36, 42), range(42, 48), 30, 48, 54),  # the inner-mouth corners 60/64 come after 54
    49: (range(19, 25), range(25, 31), 13, 31, 37),  # 68-point index - 17 up to point 59
}
SCHEMES = (68, 66, 49, 5)


def five_points(points: np.ndarray) -> np.ndarray:
    """The template's five points (``[5, 2]`` float64, x, y) of a landmark set of one of
    :data:`SCHEMES` (``[K, 2]``); ``ValueError`` for any other count."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 5:
        return pts
    if len(pts) not in _SCHEMES:
        raise ValueError(f"{len(pts)} landmarks: expected one of {', '.join(map(str, SCHEMES))} points")
    right_eye, left_eye, nose, mouth_r, mouth_l = _SCHEMES[len(pts)]
    return np.stack([pts[list(right_eye)].mean(0), pts[list(left_eye)].mean(0), pts[nose], pts[mouth_r], pts[mouth_l]])


def template(size: int, margin: float = MARGIN) -> np.ndarray:
    """The five template points in pixels of a ``size`` x ``size`` crop with ``margin``."""
    return (0.5 + (TEMPLATE - 0.5) / (1.0 + margin)) * size


def alignment_matrix(points: np.ndarray, size: int, margin: float = MARGIN) -> np.ndarray:
    """The 2x3 similarity matrix mapping source-image pixels onto the crop, least squares over the
    five points of ``points`` (any of :data:`SCHEMES`). Coordinates are pixel centres (x, y)."""
    from skimage.transform import SimilarityTransform

    src = five_points(points)
    if not np.isfinite(src).all():
        raise ValueError("landmarks are not finite")
    dst = template(size, margin)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tform)
    else:
        tform = SimilarityTransform()
        ok = tform.estimate(src, dst)
    if not ok or not np.isfinite(tform.params).all():
        raise ValueError("degenerate landmarks: no similarity transform fits them")
    return tform.params[:2].copy()


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) warped by the source -> crop ``matrix`` into a uint8
    ``[size, size, 3]`` square (bilinear; parts outside the image are black). A crop smaller than
    half the face's source size is warped from a box-reduced copy (Pillow's ``reduce``, the matrix
    adjusted), so big frames neither alias nor cost a full-resolution filter."""
    from PIL import Image

    a = np.asarray(matrix, dtype=np.float64)[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))  # crop pixels per source pixel
    im = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    factor = max(1, int(1.0 / scale)) if scale > 0 else 1
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    if factor > 1:
        im = im.reduce(factor)
        # reduced pixel i covers source pixels [i f, (i + 1) f): its centre is f i + (f - 1) / 2
        full = full @ np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1.0]])
    inv = np.linalg.inv(full)  # crop -> (reduced) source, pixel centres at integers
    lin, t = inv[:2, :2], inv[:2, 2]
    t = t + 0.5 - lin @ np.array([0.5, 0.5])  # Pillow's coordinates put pixel centres at +0.5
    data = (lin[0, 0], lin[0, 1], t[0], lin[1, 0], lin[1, 1], t[1])
    out = im.transform((size, size), Image.Transform.AFFINE, data=data, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class Aligned:
    """One aligned face: the crop and the source -> crop matrix that made it."""

    crop: np.ndarray
    matrix: np.ndarray


def align(image: np.ndarray, points: np.ndarray, size: int, margin: float = MARGIN) -> Aligned:
    """``image`` aligned on its landmarks ``points`` into a ``size`` x ``size`` crop."""
    matrix = alignment_matrix(points, size, margin)
    return Aligned(warp(image, matrix, size), matrix)


def record(size: int, margin: float = MARGIN) -> dict:
    """How alignment is done, for the preprocessing record of caches and results."""
    return {"template": f"five points: eye centres, nose tip, mouth corners {TEMPLATE.round(2).tolist()}",
            "transform": "similarity, least squares", "margin": margin, "output_size": size,
            "resample": "bilinear"}


__all__ = ["TEMPLATE", "MARGIN", "SCHEMES", "Aligned", "five_points", "template", "alignment_matrix", "warp",
           "align", "record"]
