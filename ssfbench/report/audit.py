"""The pretext audit: can something other than facial action solve the ranking pretext?

The temporal ranking loss asks an encoder to order the frames of a window ``[anchor, sibling, N
frames at interval k]`` by distance to the anchor. If a nuisance factor (head-pose drift, lighting)
orders them as well as the facial actions do, an encoder can solve the pretext without encoding
the actions. This module measures, on the held-out windows of the pretraining videos (the 80/20
video split of pretraining), the ranking accuracy of distances computed from one group of factors
at a time: raw pixels for any video source, and for the synthetic videos the true render
parameters (head pose, lighting, eyes, AU intensities). Accuracy is the share of adjacent pairs
``d(a, x^{n-1}) < d(a, x^n)`` (the released code's validation metric), ties counted as half.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ssfbench.api.dataset import VideoSource
from ssfbench.nn.sampling import ranking_window
from ssfbench.runtime.seeds import AUDIT_WINDOWS
from ssfbench.train.pretrain import PretrainSettings
from ssfbench.train.windows import split_videos

#: factor groups of the synthetic render parameters (``SynthVox.params``); ``au`` columns by AU
FACTOR_GROUPS: dict[str, tuple[str, ...]] = {
    "head pose (yaw, pitch, roll, position, scale)": ("yaw", "pitch", "roll", "tx", "ty", "scale"),
    "lighting and background": ("bright", "grad_x", "grad_y", "tint", "face_light", "bg", "bg_amp"),
    "eyes (blink, gaze)": ("blink", "gaze_x", "gaze_y"),
    "true AU intensities (all 14)": ("au",),
}
RAW_PIXELS = "raw pixels"
AU_WITHOUT_SPEECH = "true AU intensities without AU25/26"
#: the seed stream of the audit's window draw, :data:`ssfbench.runtime.seeds.AUDIT_WINDOWS` (this name kept for importers)
AUDIT_STREAM = AUDIT_WINDOWS


def audit_windows(videos: VideoSource, k: int, n: int, per_video: int, seed: int) -> list[tuple[int, list[int]]]:
    """``per_video`` seeded ranking windows (video, frame indices) of each held-out video long enough."""
    _, held_out = split_videos(len(videos), PretrainSettings.val_fraction, seed)
    offsets = ranking_window(0, k, n)
    out = []
    for v in held_out:
        length = videos.num_frames(int(v))
        if length <= offsets[-1]:
            continue
        rng = np.random.default_rng([seed, AUDIT_WINDOWS, k, int(v)])
        for a in rng.integers(0, length - offsets[-1], size=per_video):
            out.append((int(v), [int(a) + o for o in offsets]))
    return out


def ranking_accuracy(features: np.ndarray) -> float:
    """Share of correctly ordered adjacent pairs over windows ``[W, T, D]`` (anchor first, then the
    sibling and the N frames): ``d(a, x^{n-1}) < d(a, x^n)``, a tie counted as half."""
    d = np.linalg.norm(features[:, 1:] - features[:, :1], axis=-1)
    near, far = d[:, :-1], d[:, 1:]
    return float(((near < far) + 0.5 * np.isclose(near, far, rtol=0, atol=1e-9)).mean())


def _factor_features(videos: VideoSource, windows: list[tuple[int, list[int]]], keys: Sequence[str],
                     drop_au: Sequence[int] = ()) -> np.ndarray:
    """``[W, T, D]`` render parameters ``keys`` of every window frame, each dimension scaled to unit
    std over all window frames (so no factor dominates by its units)."""
    rows = []
    for v, frames in windows:
        p = videos.params(v)
        cols = [np.asarray(p[key], np.float64)[frames].reshape(len(frames), -1) for key in keys]
        x = np.concatenate(cols, axis=1)
        if drop_au:
            x = np.delete(x, list(drop_au), axis=1)
        rows.append(x)
    feats = np.stack(rows)
    std = feats.reshape(-1, feats.shape[-1]).std(axis=0)
    return feats / np.where(std > 0, std, 1.0)


def pretext_audit(videos: VideoSource, ks: Sequence[int] = (1, 2, 4), n: int = 10, per_video: int = 3,
                  seed: int = 0) -> pd.DataFrame:
    """One row per factor group, one column per ``k``: ranking accuracy of held-out windows ordered by
    that factor alone. Synthetic sources (with ``params``) get the factor rows; every source gets
    raw pixels."""
    table: dict[str, dict[str, float]] = {}
    synthetic = hasattr(videos, "params")
    for k in ks:
        windows = audit_windows(videos, k, n, per_video, seed)
        if not windows:
            continue
        col = f"k={k}"
        if synthetic:
            from ssfbench.datasets.synthetic import AUS

            for name, keys in FACTOR_GROUPS.items():
                table.setdefault(name, {})[col] = ranking_accuracy(_factor_features(videos, windows, keys))
            speech = [AUS.index(25), AUS.index(26)]
            table.setdefault(AU_WITHOUT_SPEECH, {})[col] = ranking_accuracy(
                _factor_features(videos, windows, ("au",), drop_au=speech))
        pixels = np.stack([videos.read_frames(v, f).reshape(len(f), -1).astype(np.float64) for v, f in windows])
        table.setdefault(RAW_PIXELS, {})[col] = ranking_accuracy(pixels)
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.name = "ordered by"
    return frame
