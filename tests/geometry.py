"""Geometry checks for the alignment tests: points mapped by a 2x3 affine matrix."""

from __future__ import annotations

import numpy as np


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points`` (``[K, 2]`` x, y) mapped by a 2x3 ``matrix``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
