"""Face detection and 68 landmarks for images that come without them, offline: dlib's frontal
(HOG) detector, the paper's own tool, plus the 68-point shape predictor that the
``face-recognition-models`` package ships. Both come with the optional extra
``pip install 'ssfbench[faces]'`` (``dlib-bin`` is dlib's prebuilt wheel); nothing is downloaded.

Detection runs on a copy downscaled to at most :data:`DETECT_SIDE` pixels on its longer side
(detection cost grows with the pixel count; a 1.4 Mpx BP4D frame needs no more), and the
landmarks are predicted at full resolution inside the box scaled back. Faces come largest first.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ssfbench.errors import UserError

#: the pip command that installs the detector (named in the error when it is missing)
INSTALL = "pip install 'ssfbench[faces]'"
#: longest side of the copy the detector runs on
DETECT_SIDE = 640
#: dlib's upsampling passes (1 finds faces down to about 40 px in the detection copy)
UPSAMPLE = 1
PREDICTOR = "shape_predictor_68_face_landmarks.dat"


@dataclass(frozen=True)
class Face:
    """One detected face: its box ``(x0, y0, x1, y1)`` and 68 landmarks ``[68, 2]`` (x, y, iBUG
    order), both in source-image pixels; ``score`` is the detector's confidence."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def models_dir() -> Path:
    """The ``models/`` folder of ``face-recognition-models``, found without importing the package
    (its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"face detection needs the face-recognition-models package: {INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / PREDICTOR).is_file():
        raise UserError(f"{folder / PREDICTOR}: landmark model missing; reinstall with {INSTALL}")
    return folder


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise UserError(f"face detection needs dlib: {INSTALL}") from None
    return dlib


class Detector:
    """dlib's HOG detector + 68-point predictor; thread-safe (one lock per instance: dlib's
    objects are not re-entrant)."""

    def __init__(self, detect_side: int = DETECT_SIDE, upsample: int = UPSAMPLE) -> None:
        dlib = _dlib()
        self.detect_side = int(detect_side)
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(models_dir() / PREDICTOR))
        self._rect = dlib.rectangle
        self._lock = threading.Lock()

    def record(self) -> dict:
        """What detects faces, for the preprocessing record of caches and results."""
        return {"detector": f"dlib {_dlib().__version__} frontal HOG, upsample {self.upsample}, "
                            f"on a copy of at most {self.detect_side} px",
                "detected_landmarks": f"dlib {PREDICTOR} (face-recognition-models)"}

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in ``image`` (uint8 ``[H, W, 3]`` RGB, or ``[H, W]`` grey), largest first."""
        from PIL import Image

        rgb = np.ascontiguousarray(np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3], dtype=np.uint8)
        h, w = rgb.shape[:2]
        factor = min(1.0, self.detect_side / max(h, w))
        small = rgb if factor == 1.0 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BILINEAR))
        with self._lock:
            boxes, scores, _ = self._detector.run(small, self.upsample, 0.0)
            faces = []
            for r, score in zip(boxes, scores):
                box = (r.left() / factor, r.top() / factor, (r.right() + 1) / factor, (r.bottom() + 1) / factor)
                rect = self._rect(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
                shape = self._predictor(rgb, rect)
                points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float64)
                faces.append(Face(box, points, float(score)))
        return sorted(faces, key=lambda f: -f.area)


def available() -> bool:
    """Whether dlib and the landmark model are installed (the ``[faces]`` extra)."""
    try:
        _dlib()
        models_dir()
    except UserError:
        return False
    return True


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    """One shared :class:`Detector` per process (the predictor takes about a second to load)."""
    return Detector()


__all__ = ["INSTALL", "DETECT_SIDE", "Face", "Detector", "models_dir", "available", "default_detector"]
