"""The embedded synthetic benchmark: procedurally drawn faces whose facial action units (AUs) are
known exactly, deterministic from a seed, no downloads.

Three registered datasets share one renderer:

* ``synth-vox`` (:class:`SynthVox`): unlabeled talking-face videos for pretraining
  (VoxCeleb-like: one identity per video, expression events, speech mouth motion, blinks, gaze,
  calm head-pose drift; lighting and background constant within a video).
* ``synth-au`` (:class:`SynthAU`): BP4D-like labelled frames (14 AUs, occurrence = intensity >= 2)
  of subjects that never appear in ``synth-vox``; 3 subject-independent folds, metric F1.
* ``synth-expr`` (:class:`SynthExpr`): AffectNet-like still images of 8 expressions built from
  prototypical AU combinations; one identity-disjoint train/test split, metric AUC.

Faces are rendered as anti-aliased signed-distance shapes (ellipses, bands between curves,
lines) in vectorised numpy over a batch ``[B, H, W]``; every frame is a dict of per-frame
parameters (identity, scene, pose, AU intensities, blink, gaze). Trajectories of a whole video are
simulated at once (cheap); only the frames asked for are rendered. Sensor noise of a frame comes
from a generator keyed by (dataset, video, frame), so pixels never depend on call order.

The world is kinder than real video (only the face moves much inside a video, cues are purely
geometric); report results on it as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ssfbench.data import Fold, LabeledFrames, VideoSource
from ssfbench.errors import UserError

#: Bump whenever the rendered pixels or labels change (part of every fingerprint).
SYNTH_VERSION = "synth-1"

#: The AUs the renderer animates, in label order.
AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24, 25, 26)
AU_NAMES: tuple[str, ...] = tuple(f"AU{a}" for a in AUS)
#: The expression classes of ``synth-expr``, in label order.
EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
#: Occurrence threshold on intensity (0..5).
THRESHOLD = 2.0
FPS = 25.0

_A = {a: i for i, a in enumerate(AUS)}
_F32 = np.float32
# Seed streams: identities of different datasets never share a generator.
_STREAM_VOX, _STREAM_AU, _STREAM_EXPR = 101, 202, 303
_K_IDENTITY, _K_VIDEO, _K_NOISE, _K_FOLDS, _K_IMAGE = 1, 2, 3, 4, 5


def _rng(*key: int) -> np.random.Generator:
    """A generator keyed by a tuple of non-negative ints (order-independent determinism)."""
    return np.random.default_rng([7919, *(int(k) for k in key)])


# =============================================================================================
# Parameters: identity, scene, per-frame state
# =============================================================================================

_SKIN = np.array([(0.97, 0.82, 0.71), (0.93, 0.74, 0.60), (0.84, 0.63, 0.48), (0.70, 0.49, 0.34),
                  (0.52, 0.35, 0.24), (0.36, 0.24, 0.17)], _F32)
_HAIR = np.array([(0.07, 0.06, 0.05), (0.18, 0.12, 0.08), (0.36, 0.23, 0.13), (0.72, 0.58, 0.36),
                  (0.52, 0.24, 0.11), (0.62, 0.61, 0.60)], _F32)
_IRIS = np.array([(0.30, 0.18, 0.09), (0.14, 0.09, 0.06), (0.30, 0.45, 0.62), (0.33, 0.43, 0.28)], _F32)


def sample_identity(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the ~40 parameters of one person (face shape, features, colours, hair, beard, glasses)."""
    u = rng.uniform
    skin = _SKIN[rng.choice(len(_SKIN), p=[0.22, 0.24, 0.2, 0.14, 0.11, 0.09])] * u(0.94, 1.04) + u(-0.03, 0.03, 3)
    tone = float(np.dot(skin, (0.3, 0.5, 0.2)))
    hair_p = np.array([0.32, 0.28, 0.16, 0.1, 0.05, 0.09]) if tone > 0.55 else np.array([0.7, 0.22, 0.05, 0, 0, 0.03])
    hair = _HAIR[rng.choice(len(_HAIR), p=hair_p / hair_p.sum())] * u(0.85, 1.15)
    male = rng.random() < 0.5
    beard = int(rng.choice(6, p=[0.5, 0.14, 0.12, 0.08, 0.08, 0.08])) if male else 0
    style = int(rng.choice(5, p=[0.08, 0.42, 0.2, 0.05, 0.25] if male else [0.0, 0.1, 0.3, 0.45, 0.15]))
    lip = skin * np.array([0.88, 0.62, 0.62]) * u(0.85, 1.0) + np.array([0.06, 0.0, 0.02])
    p = {
        "face_w": u(0.74, 0.86), "face_top": u(1.0, 1.12), "chin": u(0.88, 0.97), "jaw_taper": u(0.12, 0.34),
        "brow_v": u(-0.37, -0.30), "brow_in": u(0.08, 0.12), "brow_out": u(0.54, 0.62),
        "brow_th": u(0.026, 0.05) * (1.15 if male else 0.9), "brow_arch": u(0.015, 0.07), "brow_slant": u(-0.03, 0.03),
        "eye_x": u(0.26, 0.32), "eye_v": u(-0.14, -0.10), "eye_w": u(0.12, 0.15), "eye_up": u(0.055, 0.075),
        "eye_lo": u(0.032, 0.048), "eye_tilt": u(-0.02, 0.035), "iris_r": u(0.047, 0.056),
        "nose_len": u(0.2, 0.28), "nose_w": u(0.08, 0.12),
        "mouth_v": u(0.50, 0.56), "mouth_w": u(0.21, 0.27), "lip_up": u(0.036, 0.06), "lip_lo": u(0.048, 0.078),
        "mouth_curve": u(-0.006, 0.01), "age": u(0.0, 1.0),
        "hair_style": float(style), "hairline": u(-0.80, -0.6) if style != 4 else u(-0.56, -0.48),
        "hair_side": u(0.35, 0.9), "hair_part": u(-0.25, 0.25), "beard": float(beard),
        "glasses": float(rng.random() < 0.2), "glass_w": u(0.16, 0.2), "glass_h": u(0.1, 0.135),
        "glass_th": u(0.008, 0.018), "chin_ph": u(0, 6.28),
        "skin": skin, "hair": hair, "lip": lip, "iris": _IRIS[rng.integers(len(_IRIS))] * u(0.8, 1.2),
        "frame_col": np.array([0.05, 0.05, 0.05]) if rng.random() < 0.6 else u(0.2, 0.7) * np.ones(3) + u(-0.1, 0.1, 3),
    }
    return {k: np.clip(np.asarray(v, _F32), 0, None) if k in ("skin", "hair", "lip", "iris", "frame_col")
            else np.asarray(v, _F32) for k, v in p.items()}


def sample_scene(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw lighting (brightness, gradient, tint), background (colour + smooth texture) and noise level."""
    u = rng.uniform
    hue = u(0, 1, 3)
    bg = 0.25 + 0.5 * hue * u(0.4, 1.0)
    return {
        "bright": np.asarray(u(0.7, 1.15), _F32), "grad_x": np.asarray(u(-0.3, 0.3), _F32),
        "grad_y": np.asarray(u(-0.15, 0.15), _F32), "tint": np.asarray(1 + u(-0.08, 0.08, 3), _F32),
        "face_light": np.asarray(u(-0.25, 0.25), _F32), "bg": np.asarray(bg, _F32),
        "bg_amp": np.asarray(u(0.02, 0.12, 2), _F32), "bg_fx": np.asarray(u(-5, 5, 2), _F32),
        "bg_fy": np.asarray(u(-5, 5, 2), _F32), "bg_ph": np.asarray(u(0, 6.28, 2), _F32),
        "noise": np.asarray(u(0.004, 0.02), _F32),
    }


def neutral_state(n: int = 1) -> dict[str, np.ndarray]:
    """Per-frame state of ``n`` frames: frontal pose, all AUs 0, eyes open, gaze ahead."""
    z = np.zeros(n, _F32)
    return {"au": np.zeros((n, len(AUS)), _F32), "yaw": z.copy(), "pitch": z.copy(), "roll": z.copy(),
            "tx": z.copy(), "ty": z.copy(), "scale": np.ones(n, _F32), "blink": z.copy(),
            "gaze_x": z.copy(), "gaze_y": z.copy(), "asym": z.copy()}


def compose(identity: dict, scene: dict, state: dict) -> dict[str, np.ndarray]:
    """Broadcast one identity and one scene over the ``n`` frames of ``state`` -> render params."""
    n = len(state["yaw"])
    out = {k: np.asarray(v, _F32) for k, v in state.items()}
    for d in (identity, scene):
        for k, v in d.items():
            out[k] = np.broadcast_to(np.asarray(v, _F32), (n, *np.shape(v))).copy()
    return out


def concat_params(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate render params of several batches (same keys) along the frame axis."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# =============================================================================================
# Renderer
# =============================================================================================

def _cov(d: np.ndarray) -> np.ndarray:
    """Coverage of a shape from its signed distance in pixels (negative inside), ~1 px soft edge."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _band(v: np.ndarray, top: np.ndarray, bot: np.ndarray, ppu: np.ndarray) -> np.ndarray:
    """Coverage of the region between curves ``top`` < v < ``bot`` (vertical distance, anti-aliased)."""
    return np.clip((v - top) * ppu + 0.5, 0, 1) * np.clip((bot - v) * ppu + 0.5, 0, 1)


def _line(d: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """A soft line profile (1 on the line, 0 beyond ``width`` face units)."""
    return np.clip(1.0 - np.abs(d) / width, 0.0, 1.0)


def _ellipse(u: np.ndarray, v: np.ndarray, cu, cv, a, b, ppu) -> np.ndarray:
    """Anti-aliased coverage of an ellipse (approximate signed distance)."""
    r = np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2)
    return _cov((r - 1.0) * np.minimum(a, b) * ppu)


def _soft_blob(u: np.ndarray, v: np.ndarray, cu, cv, a, b) -> np.ndarray:
    """A smooth bump (1 at the centre, 0 outside the ellipse) for shading."""
    r2 = ((u - cu) / a) ** 2 + ((v - cv) / b) ** 2
    return np.clip(1.0 - r2, 0.0, 1.0) ** 2


def _paint(img: np.ndarray, alpha: np.ndarray, color) -> None:
    """Alpha-blend ``color`` ([B,1,1,3], [B,H,W,3] or [3]) over ``img`` in place."""
    img += alpha[..., None] * (color - img)


def _darken(img: np.ndarray, amount: np.ndarray) -> None:
    """Multiply ``img`` by ``1 - amount`` (shadows, wrinkles, folds) in place."""
    img *= (1.0 - amount)[..., None]


class _Canvas:
    """Per-batch render state: parameters as [B,1,1], face coordinates, the image being painted."""

    def __init__(self, params: dict[str, np.ndarray], size: int):
        b = len(params["yaw"])
        self.p = {k: (v.reshape(b, 1, 1) if v.ndim == 1 else v.reshape(b, 1, 1, -1)).astype(_F32)
                  for k, v in params.items() if k != "au"}
        au = params["au"].astype(_F32)
        self.au = {a: au[:, i].reshape(b, 1, 1) for a, i in _A.items()}
        c = ((np.arange(size, dtype=_F32) + 0.5) / size * 2 - 1)
        self.x, self.y = c[None, None, :], c[None, :, None]
        p = self.p
        cr, sr = np.cos(p["roll"]), np.sin(p["roll"])
        dx, dy = self.x - p["tx"], self.y - p["ty"]
        self.u0 = (dx * cr + dy * sr) / p["scale"]
        self.v0 = (dy * cr - dx * sr) / p["scale"]
        self.ppu = size / 2 * p["scale"]
        self.sy, self.cy = np.sin(p["yaw"]), np.cos(p["yaw"])
        self.sp, self.cp = np.sin(p["pitch"]), np.cos(p["pitch"])
        self._local: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self.img = np.empty((b, size, size, 3), _F32)

    def local(self, depth: float) -> tuple[np.ndarray, np.ndarray]:
        """Face coordinates of a part at ``depth`` (2-D approximation of yaw/pitch: shift + foreshorten)."""
        if depth not in self._local:
            lu = (self.u0 - depth * self.sy) / self.cy
            lv = (self.v0 - depth * self.sp) / self.cp
            self._local[depth] = (lu, lv)
        return self._local[depth]


def _draw_background(c: _Canvas) -> None:
    """Background colour with a smooth two-wave texture."""
    p = c.p
    tex = 0.0
    for k in range(2):
        tex = tex + p["bg_amp"][..., k] * np.sin(p["bg_fx"][..., k] * c.x + p["bg_fy"][..., k] * c.y + p["bg_ph"][..., k])
    c.img[:] = p["bg"] * (1.0 + tex)[..., None]


def _face_shape(c: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius of the head outline (1 on the outline) and its coverage."""
    p, au = c.p, c.au
    lu, lv = c.local(-0.55)
    chin = p["chin"] + 0.024 * au[26]
    b = np.where(lv < 0, p["face_top"], chin)
    taper = 1.0 - p["jaw_taper"] * np.clip(lv / chin, 0, 1) ** 2
    r = np.sqrt((lu / (p["face_w"] * taper)) ** 2 + (lv / b) ** 2)
    return r, _cov((r - 1.0) * p["face_w"] * c.ppu)


def _draw_head_back(c: _Canvas) -> None:
    """Hair behind the head, neck and ears (painted before the face)."""
    p = c.p
    lu, lv = c.local(-0.55)
    style = p["hair_style"]
    side = np.select([style == 0, style == 1, style == 2, style == 3], [0.0, 0.05, 0.11, 0.17], 0.07)
    bot = np.select([style == 1, style == 2, style == 3], [0.25, 0.55, 1.6], 0.3)
    hair_a = _ellipse(lu, lv, 0.0, -0.08, p["face_w"] + side,
                      np.where(lv < -0.08, 1.12, bot), c.ppu) * (style > 0)
    _paint(c.img, hair_a, p["hair"])
    neck = _cov((np.abs(lu) - p["face_w"] * 0.55) * c.ppu) * np.clip((lv - 0.35) * c.ppu, 0, 1)
    _paint(c.img, neck, p["skin"] * 0.78)
    eu, ev = c.local(-1.0)
    ear = _ellipse(np.abs(eu), ev, p["face_w"] - 0.02, -0.03, 0.09, 0.17, c.ppu)
    _paint(c.img, ear * (1 - (style == 3)), p["skin"] * 0.9)


def _draw_face(c: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Face skin with volume shading and a directional side light; returns (radius, coverage)."""
    p = c.p
    r, face = _face_shape(c)
    lu, _ = c.local(-0.55)
    shade = (1.0 - 0.28 * np.clip((r - 0.62) / 0.38, 0, 1) ** 2) * (1.0 + p["face_light"] * lu)
    _paint(c.img, face, p["skin"] * shade[..., None])
    return r, face


def _draw_cheeks(c: _Canvas) -> None:
    """Cheek highlights that rise with AU6, the bulge shadow below them, nasolabial folds (AU10/12/6)."""
    p, au = c.p, c.au
    lu, lv = c.local(-0.1)
    a = np.abs(lu)
    cv = 0.12 - 0.016 * au[6] - 0.004 * au[12]
    hi = _soft_blob(a, lv, 0.42, cv, 0.17, 0.11) * (0.05 + 0.03 * au[6])
    _paint(c.img, hi, np.minimum(p["skin"] * 1.18 + np.array([0.04, 0.0, 0.0], _F32), 1.0))
    _darken(c.img, _line(lv - cv - 0.1 - 0.1 * (a - 0.42) ** 2, 0.03) * _soft_blob(a, lv, 0.43, cv + 0.1, 0.16, 0.1)
            * (0.012 * au[6] + 0.008 * au[12]))
    # nasolabial fold: from the nose wing down and out past the mouth corner
    mu, mv = c.local(0.1)
    am = np.abs(mu)
    v0 = p["nose_len"] + 0.0 - 0.012 * au[10] - 0.006 * au[12]
    v1 = p["mouth_v"] + 0.08 + 0.012 * au[26]
    u0 = p["nose_w"] + 0.055
    u1 = p["mouth_w"] + 0.07 + 0.012 * au[12] - 0.006 * au[14]
    t = (mv - v0) / (v1 - v0)
    uf = u0 + (u1 - u0) * t + (0.035 + 0.006 * au[12]) * t * (1 - t)
    taper = np.clip(t * 4, 0, 1) * np.clip((1 - t) * 3, 0, 1)
    depth = 0.05 + 0.07 * p["age"] + 0.05 * au[10] + 0.035 * au[12] + 0.012 * au[6]
    _darken(c.img, _line(am - uf, 0.016) * taper * np.minimum(depth, 0.45))
    # light ridge lateral to the fold (the raised cheek)
    _paint(c.img, _line(am - uf - 0.03, 0.025) * taper * (0.015 * au[12] + 0.01 * au[10]), p["skin"] * 1.2)


def _draw_forehead(c: _Canvas) -> None:
    """Horizontal forehead wrinkles (AU1 centrally, AU2 laterally) and AU4 vertical glabellar furrows."""
    p, au = c.p, c.au
    lu, lv = c.local(0.0)
    a = np.abs(lu)
    first = p["brow_v"] - 0.13 - 0.02 * au[1] - 0.02 * au[2]
    k = (first - lv + 0.08 * a * a) / 0.07
    dist = np.abs(k - np.round(k)) * 0.07
    inside = (k > -0.5) & (k < 2.5)
    w = (0.03 * au[1] * np.clip(1 - a / 0.45, 0, 1) + 0.028 * au[2] * np.clip(a / 0.25, 0, 1)
         * np.clip((0.62 - a) / 0.2, 0, 1)) + 0.03 * p["age"]
    _darken(c.img, _line(dist, 0.012) * inside * np.minimum(w, 0.35))
    top = p["brow_v"] + 0.028 * au[4] - 0.036 * au[1] - 0.05
    furrow = _line(a - 0.045 + 0.002 * au[4], 0.013) * np.clip((lv - top) / 0.03, 0, 1) * np.clip((top + 0.16 - lv) / 0.04, 0, 1)
    _darken(c.img, furrow * 0.07 * au[4])


def _draw_brows(c: _Canvas) -> None:
    """Eyebrows: AU1 raises the inner ends, AU2 the outer ends, AU4 lowers and draws them together."""
    p, au, ppu = c.p, c.au, c.ppu
    lu, lv = c.local(0.0)
    a = np.abs(lu)
    x_in = np.maximum(p["brow_in"] - 0.014 * au[4], 0.04)
    x_out = p["brow_out"]
    v_in = p["brow_v"] - 0.037 * au[1] + 0.03 * au[4] - 0.004 * au[2]
    v_out = p["brow_v"] + p["brow_slant"] - 0.037 * au[2] + 0.012 * au[4] - 0.005 * au[1]
    s = np.clip((a - x_in) / (x_out - x_in), 0, 1)
    arch = (p["brow_arch"] + 0.008 * au[2] - 0.006 * au[4]) * 4 * s * (1 - s) * (1 - 0.4 * s)
    vc = v_in + (v_out - v_in) * s - arch
    th = p["brow_th"] * (1.0 - 0.55 * s * s)
    d = np.maximum(np.abs(lv - vc) - th, np.maximum(x_in - a, a - x_out))
    brow = _cov(d * ppu) * 0.92
    _paint(c.img, brow, p["hair"] * 0.8)


def _draw_eyes(c: _Canvas) -> None:
    """Eyes: lids (AU6 lower lid up, AU7 narrower and straighter), iris with gaze, blinks, crease,
    and AU6 crow's feet / infraorbital furrow."""
    p, au, ppu = c.p, c.au, c.ppu
    lu, lv = c.local(0.0)
    a = np.abs(lu)
    ex, ey, ew = p["eye_x"], p["eye_v"], p["eye_w"]
    s = (a - ex) / ew
    q = np.clip(1.0 - s * s, 0, 1)
    base = ey - p["eye_tilt"] * s
    up_open = p["eye_up"] * (1 - 0.075 * au[7]) * (1 - 0.035 * au[6])
    lo_h = p["eye_lo"] * (1 - 0.08 * au[6]) * (1 - 0.04 * au[7])
    lo_base = base - 0.006 * au[6] - 0.002 * au[7]
    lo = lo_base + lo_h * q ** (1.0 - 0.13 * au[7])
    up = base - up_open * q ** 0.8 * (1 - 0.15 * s)
    up = up + (lo - up) * p["blink"]
    # socket shading
    _darken(c.img, _soft_blob(a, lv, ex, ey - 0.01, ew * 1.45, 0.12) * 0.07)
    hm = np.clip((1 - np.abs(s)) * ew * ppu + 0.5, 0, 1)
    white = _band(lv, up, lo, ppu) * hm
    _paint(c.img, white, np.array([0.92, 0.89, 0.86], _F32))
    side = np.sign(lu)
    ic = ex + p["gaze_x"] * side * 0.045
    iv = ey + p["gaze_y"] * 0.022
    ri = p["iris_r"]
    dist = np.sqrt((a - ic) ** 2 + (lv - iv) ** 2)
    _paint(c.img, _cov((dist - ri) * ppu) * white, p["iris"])
    _paint(c.img, _cov((dist - ri * 0.45) * ppu) * white, np.array([0.03, 0.03, 0.03], _F32))
    # lash line on the upper lid, faint lower lid line
    lash = _cov((np.abs(lv - up + 0.007) - 0.011) * ppu) * np.clip((1.06 - np.abs(s)) * ew * ppu, 0, 1)
    _paint(c.img, lash * 0.85, p["hair"] * 0.5)
    _darken(c.img, _line(lv - lo - 0.006, 0.01) * hm * 0.12)
    crease = base - up_open * 1.02 - 0.045 + 0.006 * au[7]
    _darken(c.img, _line(lv - (crease + 0.04 * s * s), 0.013) * hm * 0.16)
    # AU6: crow's feet at the outer corner, infraorbital furrow below the lower lid
    cu, cv = ex + ew + 0.025, ey - 0.01
    du, dv = a - cu, lv - cv
    feet = 0.0
    for ang in (-0.5, 0.0, 0.5):
        ca, sa = np.cos(ang), np.sin(ang)
        along = du * ca + dv * sa
        feet = feet + _line(dv * ca - du * sa, 0.01) * np.clip(along / 0.01, 0, 1) * np.clip((0.085 - along) / 0.03, 0, 1)
    _darken(c.img, feet * (0.045 * au[6] + 0.012 * au[7]))
    fur = lo_base + p["eye_lo"] + 0.05 - 0.008 * au[6] + 0.03 * s * s
    _darken(c.img, _line(lv - fur, 0.016) * hm * (0.04 + 0.05 * p["age"] + 0.035 * au[6]))


def _draw_nose(c: _Canvas) -> None:
    """Nose: bridge shading, tip highlight, alae and nostrils (AU10 lifts the wings)."""
    p, au, ppu = c.p, c.au, c.ppu
    lu, lv = c.local(0.35)
    a = np.abs(lu)
    nl, nw = p["nose_len"], p["nose_w"] * (1 + 0.02 * au[10])
    lift = 0.008 * au[10]
    bridge = _line(a - 0.07 - 0.25 * np.clip(lv - 0.0, 0, 1) * nw, 0.03) * np.clip((lv + 0.08) / 0.1, 0, 1) * np.clip((nl - lv) / 0.06, 0, 1)
    _darken(c.img, bridge * (0.07 - 0.1 * p["face_light"] * np.sign(lu)))
    _paint(c.img, _soft_blob(lu, lv, 0.0, nl - 0.025 - lift, 0.055, 0.05) * 0.25, np.minimum(p["skin"] * 1.2, 1))
    ala = _soft_blob(a, lv, nw, nl + 0.01 - lift, 0.05, 0.045) - _soft_blob(a, lv, nw - 0.01, nl - lift, 0.045, 0.035)
    _darken(c.img, np.clip(ala, 0, 1) * 0.45)
    side = _line(a - nw - 0.01 + 0.3 * (nl - lv) * nw, 0.03) * np.clip((lv - 0.0) / 0.1, 0, 1) * np.clip((nl + 0.02 - lv) / 0.04, 0, 1)
    _darken(c.img, side * 0.12)
    _darken(c.img, _soft_blob(lu, lv, 0.0, nl + 0.05 - lift, nw + 0.02, 0.025) * 0.18)
    nos = _ellipse(a, lv, nw * 0.5, nl + 0.033 - lift, 0.03, 0.014, ppu)
    _paint(c.img, nos * 0.85, p["skin"] * 0.3)


def _mouth_geometry(c: _Canvas) -> dict[str, np.ndarray]:
    """Curves of the mouth in local coordinates: lip contact line, inner and outer lip edges."""
    p, au = c.p, c.au
    lu, lv = c.local(0.1)
    side = np.where(lu < 0, 1.0 + p["asym"], 1.0 - p["asym"])
    i12, i14 = np.clip(au[12] * side, 0, 5), np.clip(au[14] * side, 0, 5)
    mw = p["mouth_w"] * (1 + 0.045 * i12 - 0.028 * i14 - 0.012 * au[23] - 0.01 * au[24] - 0.01 * au[26] + 0.004 * au[15])
    s = lu / mw
    a = np.minimum(np.abs(s), 1.0)
    q = 1.0 - a * a
    lift = (0.021 * i12 + 0.006 * i14 - 0.019 * au[15] - 0.006 * au[17] + p["mouth_curve"]) * (1 - 0.12 * au[24])
    mid = p["mouth_v"] - 0.011 * au[17] - 0.004 * au[10] - lift * a * a - 0.02 * q * (0.3 * au[17] / 5)
    g25 = 0.018 * au[25]
    g26 = 0.03 * au[26] * np.clip(0.3 + 0.35 * au[25], 0, 1)
    press = np.clip(1 - 0.2 * au[24], 0, 1)
    prof = q ** 0.7 * press
    up_in = mid - prof * (0.4 * g25 + 0.1 * g26 + 0.009 * au[10])
    lo_in = mid + prof * (0.6 * g25 + 0.9 * g26)
    thin = (1 - 0.09 * au[23]) * (1 - 0.09 * au[24])
    tu = p["lip_up"] * thin * (1 + 0.03 * au[10])
    tl = p["lip_lo"] * thin * (1 + 0.03 * au[17])
    bow = 1 - 0.35 * np.clip(1 - np.abs(s) / 0.22, 0, 1)
    up_out = up_in - tu * np.sqrt(q) * bow
    lo_out = lo_in + tl * q ** 0.6
    return {"lu": lu, "lv": lv, "s": s, "mw": mw, "mid": mid, "up_in": up_in, "lo_in": lo_in,
            "up_out": up_out, "lo_out": lo_out, "i14": i14, "open": g25 + g26}


def _draw_lower_face(c: _Canvas, m: dict[str, np.ndarray]) -> None:
    """Chin boss (AU17 up + wrinkles; AU26 lowers it), mentolabial sulcus, AU14 dimples, AU24 bulges."""
    p, au = c.p, c.au
    lu, lv = m["lu"], m["lv"]
    a = np.abs(lu)
    chin_v = p["chin"] + 0.024 * au[26] - 0.14 - 0.018 * au[17]
    boss = _soft_blob(lu, lv, 0.0, chin_v, 0.17, 0.1)
    _paint(c.img, boss * (0.1 + 0.03 * au[17]), np.minimum(p["skin"] * 1.15, 1))
    wr = np.sin(lu * 70 + p["chin_ph"]) * np.sin(lv * 70 + 2 * p["chin_ph"])
    _darken(c.img, boss * np.clip(wr - 0.3, 0, 1) * 0.1 * au[17])
    lo_c = p["mouth_v"] + p["lip_lo"] + 0.9 * m["open"] - 0.011 * au[17]
    sulc = lo_c + 0.045 + 0.25 * lu * lu - 0.005 * au[17]
    _darken(c.img, _line(lv - sulc, 0.022) * np.clip((0.2 - a) / 0.08, 0, 1) * (0.06 + 0.025 * au[17] + 0.02 * au[24]))
    # AU14 dimples lateral to the corners, AU23/24 lip tightening shadows above/below the lips
    corner_v = m["mid"]
    dim = _line(a - m["mw"] - 0.03, 0.014) * _line(lv - corner_v, 0.05)
    _darken(c.img, dim * (0.07 * m["i14"] + 0.01 * au[12]))
    tight = (0.015 * au[23] + 0.02 * au[24]) * np.clip((1.2 - np.abs(m["s"])) * 3, 0, 1)
    _darken(c.img, (_line(lv - m["up_out"] + 0.02, 0.02) + _line(lv - m["lo_out"] - 0.022, 0.02)) * tight)


def _draw_beard(c: _Canvas, m: dict[str, np.ndarray], face: np.ndarray, moustache: bool) -> None:
    """Facial hair by ``beard`` style: stubble (1), full beard (2), goatee (3), moustache (4),
    moustache + goatee (5). The chin part is painted under the lips, the moustache over them."""
    p = c.p
    style = p["beard"]
    if not np.any(style > 0):
        return
    lu, lv, ppu = m["lu"], m["lv"], c.ppu
    a = np.abs(lu)
    tex = 1.0 + 0.12 * np.sin(lu * 90 + lv * 30) * np.sin(lv * 70 - lu * 20)
    col = p["hair"] * 0.9 * tex[..., None]
    if moustache:
        sa = np.minimum(np.abs(m["s"]), 1.25)
        top = p["mouth_v"] - p["lip_up"] - 0.055 + 0.045 * sa * sa
        stache = (np.clip((m["up_out"] + 0.008 - lv) * ppu + 0.5, 0, 1) * np.clip((lv - top) * ppu + 0.5, 0, 1)
                  * np.clip((1.22 - np.abs(m["s"])) * m["mw"] * ppu, 0, 1))
        alpha = np.select([style == 1, style == 2, (style == 4) | (style == 5)], [0.25, 0.85, 0.85], 0.0) * stache
    else:
        jaw_top = p["mouth_v"] + 0.02 - (p["mouth_v"] - 0.02) * np.clip(a / p["face_w"], 0, 1) ** 1.5
        full = np.clip((lv - jaw_top) * ppu * 0.4, 0, 1) * face
        chin_v = p["chin"] + 0.024 * c.au[26]
        lo_lip = p["mouth_v"] + p["lip_lo"] + 0.9 * m["open"] + 0.01
        goatee = (_ellipse(lu, lv, 0.0, chin_v - 0.12, 0.15, 0.16, ppu)
                  * np.clip((lv - lo_lip) * ppu + 0.5, 0, 1) * face)
        alpha = np.select([style == 1, style == 2, (style == 3) | (style == 5)], [0.25 * full, 0.85 * full, 0.75 * goatee], 0.0)
    _paint(c.img, alpha, col)


def _draw_mouth(c: _Canvas, m: dict[str, np.ndarray]) -> None:
    """Lips (AU23/24 thinner), lip contact line, dark interior with teeth when parted (AU25/26)."""
    p, ppu = c.p, c.ppu
    lv, s = m["lv"], m["s"]
    hm = np.clip((1 - np.abs(s)) * m["mw"] * ppu + 0.5, 0, 1)
    lips = _band(lv, m["up_out"], m["lo_out"], ppu) * hm
    upper = np.clip((m["mid"] - lv) * ppu + 0.5, 0, 1)
    lipcol = p["lip"] * (0.9 + 0.12 * (1 - upper))[..., None]
    _paint(c.img, lips, lipcol)
    _darken(c.img, _cov((np.abs(lv - m["mid"]) - 0.004) * ppu) * hm * 0.55)
    inner = _band(lv, m["up_in"], m["lo_in"], ppu) * hm
    _paint(c.img, inner, np.array([0.22, 0.07, 0.07], _F32))
    teeth = inner * np.clip((m["up_in"] + 0.035 - lv) * ppu + 0.5, 0, 1) * np.clip((0.8 - np.abs(s)) * 4, 0, 1)
    _paint(c.img, teeth * 0.9, np.array([0.9, 0.87, 0.8], _F32))


def _draw_front_hair(c: _Canvas, r: np.ndarray) -> None:
    """Hair over the forehead and temples (hairline curve, side parting, fringe)."""
    p = c.p
    lu, lv = c.local(-0.3)
    hl = p["hairline"] + p["hair_side"] * lu * lu + p["hair_part"] * lu
    hl = hl + np.where(p["hair_style"] == 4, 0.02 * np.sin(lu * 30), 0.0)
    inside = _cov((r - 1.06) * p["face_w"] * c.ppu)
    alpha = np.clip((hl - lv) * c.ppu + 0.5, 0, 1) * inside * (p["hair_style"] > 0)
    strands = 1.0 + 0.1 * np.sin(lu * 45 + lv * 8)
    _paint(c.img, alpha, p["hair"] * strands[..., None])


def _draw_glasses(c: _Canvas) -> None:
    """Glasses on some identities: two rounded rims, tinted lenses, bridge and temple arms."""
    p = c.p
    if not np.any(p["glasses"] > 0):
        return
    lu, lv = c.local(0.05)
    a = np.abs(lu)
    gx, gy = p["glass_w"], p["glass_h"]
    cu, cv = p["eye_x"] + 0.01, p["eye_v"] + 0.01
    r = np.sqrt(np.sqrt(((a - cu) / gx) ** 4 + ((lv - cv) / gy) ** 4))
    d = (r - 1.0) * gy
    on = p["glasses"]
    _paint(c.img, _cov(d * c.ppu) * 0.1 * on, np.array([0.7, 0.8, 0.9], _F32))
    rim = _cov((np.abs(d) - p["glass_th"]) * c.ppu)
    bar = _cov((np.abs(lv - cv + 0.03) - p["glass_th"]) * c.ppu)
    bridge = bar * (a < cu - gx + 0.01)
    arm = bar * (a > cu + gx - 0.01) * (a < p["face_w"] * 0.98)
    _paint(c.img, np.maximum(rim, np.maximum(bridge, arm)) * on, p["frame_col"])


def _apply_lighting(c: _Canvas) -> None:
    """Scene lighting: brightness, linear gradient across the frame, colour tint."""
    p = c.p
    gain = p["bright"] * (1.0 + p["grad_x"] * c.x + p["grad_y"] * c.y)
    c.img *= gain[..., None] * p["tint"]


def render_frames(params: dict[str, np.ndarray], image_size: int = 64,
                  noise: np.ndarray | None = None, chunk: int = 48) -> np.ndarray:
    """Render a batch of faces from render params (see :func:`compose`) -> uint8 ``[B, S, S, 3]``.

    ``noise`` (float ``[B, S, S, 3]``, unit normal) is scaled by each frame's ``noise`` level;
    ``None`` renders noise-free. Large batches are rendered in chunks (cache-friendly)."""
    n = len(params["yaw"])
    out = np.empty((n, image_size, image_size, 3), np.uint8)
    for lo in range(0, n, chunk):
        part = {k: v[lo:lo + chunk] for k, v in params.items()}
        img = _render_chunk(part, image_size)
        if noise is not None:
            img += noise[lo:lo + chunk] * part["noise"].reshape(-1, 1, 1, 1)
        out[lo:lo + chunk] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _render_chunk(params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Paint every layer of one chunk; float ``[B, S, S, 3]`` in [0, 1]-ish."""
    c = _Canvas(params, size)
    _draw_background(c)
    _draw_head_back(c)
    r, face = _draw_face(c)
    _draw_cheeks(c)
    _draw_forehead(c)
    _draw_eyes(c)
    _draw_nose(c)
    m = _mouth_geometry(c)
    _draw_lower_face(c, m)
    _draw_beard(c, m, face, moustache=False)
    _draw_mouth(c, m)
    _draw_beard(c, m, face, moustache=True)
    _draw_front_hair(c, r)
    _draw_brows(c)
    _draw_glasses(c)
    _apply_lighting(c)
    return c.img


def frame_noise(stream: int, seed: int, video: int, frames: Sequence[int], image_size: int) -> np.ndarray:
    """Unit-normal sensor noise ``[len(frames), S, S, 3]``, one generator per (stream, seed, video, frame)."""
    out = np.empty((len(frames), image_size, image_size, 3), _F32)
    for i, f in enumerate(frames):
        out[i] = _rng(stream, seed, _K_NOISE, video, int(f)).standard_normal((image_size, image_size, 3), _F32)
    return out


# =============================================================================================
# Talking-face dynamics
# =============================================================================================

#: Expression events: (weight, {AU: relative intensity}); relative intensities < 1 are optional-ish
#: companions. Weights tuned so base rates land near BP4D's (see ``base_rates``).
_EVENTS: tuple[tuple[float, dict[int, float]], ...] = (
    (0.22, {6: 1.0, 12: 1.0, 7: 0.8, 10: 0.8, 25: 0.5}),  # Duchenne smile / laugh
    (0.10, {12: 1.0, 10: 0.7, 14: 0.6}),                    # social smile
    (0.13, {1: 1.0, 2: 1.0}),                               # brow raise
    (0.12, {4: 1.0, 7: 0.6}),                               # frown / concentration
    (0.10, {15: 1.0, 17: 1.0, 1: 0.5}),                     # sad / doubt
    (0.12, {14: 1.0, 7: 0.5}),                              # dimpler
    (0.13, {23: 1.0, 24: 1.0, 17: 0.4}),                    # lips pressed
    (0.12, {10: 1.0, 7: 0.6, 14: 0.4}),                     # upper lip raise
    (0.09, {6: 0.8, 7: 1.0, 10: 0.7}),                      # squint / wince
)
#: Per-video tonic level range per AU (a resting face is not all zeros).
_TONIC = {1: 0.9, 2: 0.8, 4: 1.0, 6: 1.7, 7: 1.7, 10: 2.5, 12: 2.3, 14: 2.6, 15: 1.1, 17: 2.6, 23: 1.1,
          24: 2.2, 25: 0.4, 26: 0.2}


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, fmin: float, fmax: float, k: int = 3) -> np.ndarray:
    """Zero-mean, unit-ish variance smooth signal: sum of ``k`` random sinusoids in [fmin, fmax] Hz."""
    f = rng.uniform(fmin, fmax, k)
    ph = rng.uniform(0, 2 * np.pi, k)
    return np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None]).sum(0) * np.sqrt(2.0 / k)


def _envelope(t: np.ndarray, start: float, onset: float, apex: float, offset: float) -> np.ndarray:
    """Onset-apex-offset envelope (smoothstep ramps), 0..1."""
    up = np.clip((t - start) / onset, 0, 1)
    down = np.clip((start + onset + apex + offset - t) / offset, 0, 1)
    x = np.minimum(up, down)
    return x * x * (3 - 2 * x)


def _event_track(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """One stream of expression events, back to back with short gaps -> ``[T, 14]`` intensities."""
    out = np.zeros((len(t), len(AUS)), _F32)
    w = np.array([e[0] for e in _EVENTS])
    start = rng.uniform(-2.5, 0.5)
    while start < t[-1]:
        combo = _EVENTS[rng.choice(len(_EVENTS), p=w / w.sum())][1]
        onset, apex, offset = rng.uniform(0.3, 1.0), rng.uniform(0.5, 3.0), rng.uniform(0.3, 1.5)
        peak = rng.uniform(1.5, 5.0)
        env = _envelope(t, start, onset, apex, offset) * (1 + 0.08 * _smooth_noise(rng, t, 0.3, 1.0, 2))
        for au, rel in combo.items():
            if rel < 1 and rng.random() > rel:
                continue
            out[:, _A[au]] += env * peak * rel * rng.uniform(0.75, 1.1)
        start += onset + apex + offset + rng.uniform(0.0, 1.5)
    return out


def _speech(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Mouth opening 0..1 of speech: syllables at 3-5 Hz inside talking segments (0 in pauses)."""
    talk = np.zeros(len(t), _F32)
    pos, speaking = rng.uniform(-1, 0.5), rng.random() < 0.75
    while pos < t[-1]:
        dur = rng.uniform(1.0, 3.5) if speaking else rng.uniform(0.3, 1.5)
        if speaking:
            talk = np.maximum(talk, _envelope(t, pos, 0.12, max(dur - 0.24, 0.0), 0.12))
        pos, speaking = pos + dur, not speaking
    rate = rng.uniform(3.0, 5.0) * (1 + 0.15 * _smooth_noise(rng, t, 0.2, 0.8, 2))
    phase = 2 * np.pi * np.cumsum(rate) / FPS + rng.uniform(0, 2 * np.pi)
    amp = np.clip(0.75 + 0.2 * _smooth_noise(rng, t, 1.0, 2.5, 2), 0.3, 1.0)
    return ((0.5 - 0.5 * np.cos(phase)) ** 1.2 * amp * talk).astype(_F32)


def _blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Eyelid closure 0..1: blinks every ~2-6 s lasting 0.2-0.3 s."""
    out = np.zeros(len(t), _F32)
    pos = rng.uniform(0, 4)
    while pos < t[-1]:
        half = rng.uniform(0.1, 0.15)
        out = np.maximum(out, np.clip(1 - np.abs(t - pos - half) / half, 0, 1) ** 0.7)
        pos += rng.uniform(2.0, 6.0)
    return out


def _gaze(rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaze (-1..1): fixations of 0.5-2.5 s joined by quick saccades."""
    gx, gy = np.zeros(len(t), _F32), np.zeros(len(t), _F32)
    pos, cx, cy = -1.0, 0.0, 0.0
    while pos < t[-1]:
        nx, ny = rng.normal(0, 0.35), rng.normal(0, 0.3)
        step = np.clip((t - pos) / 0.08, 0, 1)
        gx, gy = gx + step * (nx - cx), gy + step * (ny - cy)
        cx, cy = nx, ny
        pos += rng.uniform(0.5, 2.5)
    return np.clip(gx, -1, 1), np.clip(gy, -1, 1)


def simulate_video(rng: np.random.Generator, frames: int, fps: float = FPS, *, pose_drift: bool = True,
                   speech: bool = True) -> dict[str, np.ndarray]:
    """Per-frame state of one talking-face video (AU intensities ``[T, 14]``, pose, blink, gaze):
    tonic levels + continuous wandering + two streams of onset-apex-offset events + speech
    driving AU25/26; slow, small head-pose drift around a per-video mean pose. ``pose_drift=False``
    holds the pose at the video's mean, ``speech=False`` removes the speech mouth motion; both draw
    the same random numbers, so everything else about the video stays the same (paired variants)."""
    t = np.arange(frames, dtype=np.float64) / fps
    au = np.zeros((frames, len(AUS)), np.float64)
    for a, i in _A.items():
        tonic = _TONIC[a] * rng.random() ** 1.5
        au[:, i] = tonic + (0.25 + 0.3 * rng.random()) * _smooth_noise(rng, t, 0.05, 0.5)
    au += _event_track(rng, t) + _event_track(rng, t) + _event_track(rng, t)
    o = _speech(rng, t) * (1.0 if speech else 0.0)
    talking = o > 0.0
    au[:, _A[25]] += np.where(talking, 1.3 + 3.4 * o, 0.0)
    au[:, _A[26]] += 4.6 * o ** 1.6
    au[:, _A[24]] *= np.where(talking, 0.6, 1.0)
    st = neutral_state(frames)
    st["au"] = np.clip(au, 0, 5).astype(_F32)
    pose_mean = {"yaw": rng.normal(0, 0.2), "pitch": rng.normal(0, 0.08), "roll": rng.normal(0, 0.06),
                 "tx": rng.normal(0, 0.025), "ty": rng.normal(0, 0.025), "scale": 1 + rng.normal(0, 0.03)}
    drift = {"yaw": 0.03, "pitch": 0.02, "roll": 0.015, "tx": 0.006, "ty": 0.006, "scale": 0.006}
    for k, mean in pose_mean.items():
        st[k] = (mean + drift[k] * (1.0 if pose_drift else 0.0) * _smooth_noise(rng, t, 0.03, 0.15, 2)).astype(_F32)
    st["yaw"] = np.clip(st["yaw"], -0.55, 0.55)
    st["blink"] = _blinks(rng, t)
    st["gaze_x"], st["gaze_y"] = _gaze(rng, t)
    st["asym"] = np.full(frames, rng.normal(0, 0.08), _F32)
    return st


# =============================================================================================
# Datasets
# =============================================================================================

def _fingerprint(name: str, seed: int, image_size: int, options: dict) -> str:
    """sha256 (16 hex chars) over the renderer version, dataset name, seed, image size and size options."""
    blob = json.dumps({"version": SYNTH_VERSION, "name": name, "seed": seed, "image_size": image_size,
                       "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _take(params: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``rows`` of every per-frame parameter array."""
    return {k: v[rows] for k, v in params.items()}


class SynthVox(VideoSource):
    """Unlabeled synthetic talking-face videos for pretraining (one identity per video)."""

    name = "synth-vox"
    summary = "synthetic talking faces (200 identities x 2 videos x 150 frames, 25 fps), rendered on the fly"

    def __init__(self, image_size: int = 64, seed: int = 0, identities: int = 200,
                 videos_per_identity: int = 2, frames: int = 150, pose_drift: bool = True, speech: bool = True):
        self.image_size, self.seed = int(image_size), int(seed)
        self.identities, self.videos_per_identity, self.frames = int(identities), int(videos_per_identity), int(frames)
        self.pose_drift, self.speech = bool(pose_drift), bool(speech)
        self._video_cache = lru_cache(maxsize=1024)(self._simulate)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, identities: int = 200,
             videos_per_identity: int = 2, frames: int = 150, pose_drift: bool = True,
             speech: bool = True) -> VideoSource:
        """Open the synthetic video set, rendered on the fly; or, when ``root`` is a store written by
        :meth:`prepare` for the same options, read from that store (the same pixels, no rendering).
        ``pose_drift=False`` / ``speech=False``: the pretext-audit variants without head-pose drift /
        without speech mouth motion (the same videos otherwise)."""
        source = cls(image_size, seed, identities, videos_per_identity, frames, pose_drift, speech)
        if root is None:
            return source
        from ssfbench.datasets._prepared_videos import VideoStore

        store = VideoStore(Path(root), cls.name)
        if store.fingerprint() != source.fingerprint():
            raise UserError(f"{root}: this store was rendered with other options than requested (image size "
                            f"{store.image_size}, requested {image_size}; or other seed/identities/frames); "
                            f"prepare it again with the same --image-size and --set options")
        return store

    @classmethod
    def prepare(cls, root: Path | None, out: Path, *, image_size: int = 64, codec: str = "raw", progress: bool = True,
                **options: Any) -> Path:
        """Render every frame once into a prepared video store at ``out`` (lossless, so runs that read
        it are the same runs as rendering on the fly); ``options`` are those of :meth:`open`."""
        from ssfbench.datasets._prepared_videos import write_video_store

        if codec != "raw":
            raise UserError(f"{cls.name}: frames are stored raw (lossless); --codec {codec} is not available")
        try:
            source = cls.open(image_size=image_size, **{k: v if isinstance(v, bool) else int(v) for k, v in options.items()})
        except (TypeError, ValueError) as exc:
            raise UserError(f"{cls.name}: bad option ({exc})") from None
        return write_video_store(source, out, progress=progress)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        options = {"identities": self.identities, "videos_per_identity": self.videos_per_identity, "frames": self.frames}
        options.update({k: False for k in ("pose_drift", "speech") if not getattr(self, k)})  # default: unchanged
        return _fingerprint(self.name, self.seed, self.image_size, options)

    def __len__(self) -> int:
        return self.identities * self.videos_per_identity

    def num_frames(self, video: int) -> int:
        """Every video has ``frames`` frames."""
        self._check(video)
        return self.frames

    def identity(self, video: int) -> str:
        """Speaker of ``video``, e.g. ``"id0007"``."""
        self._check(video)
        return f"id{video // self.videos_per_identity:04d}"

    def _check(self, video: int) -> None:
        if not 0 <= video < len(self):
            raise IndexError(f"video {video} out of range (0..{len(self) - 1})")

    def _simulate(self, video: int) -> dict[str, np.ndarray]:
        """Render params of every frame of ``video`` (trajectories are cheap; cached)."""
        ident = sample_identity(_rng(_STREAM_VOX, self.seed, _K_IDENTITY, video // self.videos_per_identity))
        rng = _rng(_STREAM_VOX, self.seed, _K_VIDEO, video)
        scene = sample_scene(rng)
        return compose(ident, scene, simulate_video(rng, self.frames, pose_drift=self.pose_drift, speech=self.speech))

    def params(self, video: int) -> dict[str, np.ndarray]:
        """Render params (identity, scene, per-frame state incl. ``au`` intensities) of all frames."""
        self._check(video)
        return self._video_cache(int(video))

    def intensities(self, video: int) -> np.ndarray:
        """True AU intensities ``[T, 14]`` of ``video`` (not for training; for inspection)."""
        return self.params(video)["au"]

    def read_frames(self, video: int, frames: Sequence[int]) -> np.ndarray:
        """Render frames ``frames`` of ``video`` as uint8 ``[len(frames), S, S, 3]``."""
        idx = np.asarray(frames, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.frames):
            raise IndexError(f"frames out of range (0..{self.frames - 1})")
        p = _take(self.params(video), idx)
        noise = frame_noise(_STREAM_VOX, self.seed, video, idx.tolist(), self.image_size)
        return render_frames(p, self.image_size, noise)


class _RenderedFrames(LabeledFrames):
    """Labelled rows whose render params are precomputed at open; images rendered on demand."""

    stream: int
    image_size: int
    seed: int
    intensities: np.ndarray
    _params: dict[str, np.ndarray]
    _noise_key: np.ndarray  # [N, 2] (video or image id, frame)

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as uint8 ``[S, S, 3]``."""
        return self.read_images([index])[0]

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Render rows ``indices`` in one vectorised batch."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return []
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"row out of range (0..{len(self) - 1})")
        noise = np.stack([frame_noise(self.stream, self.seed, int(v), [int(f)], self.image_size)[0]
                          for v, f in self._noise_key[idx]])
        return list(render_frames(_take(self._params, idx), self.image_size, noise))

    def preprocessing(self) -> dict:
        """Rendered as aligned face crops."""
        return {"crop": "aligned (synthetic)", "renderer": SYNTH_VERSION}


class SynthAU(_RenderedFrames):
    """BP4D-like labelled frames: 14 AU occurrences (intensity >= 2), 3 subject-independent folds."""

    name = "synth-au"
    summary = "synthetic BP4D-like AU frames (60 subjects, 14 AUs, 3 subject-independent folds, F1)"
    label_names = AU_NAMES
    metric = "f1"
    stream = _STREAM_AU

    def __init__(self, image_size: int = 64, seed: int = 0, subjects: int = 60, videos_per_subject: int = 2,
                 frames: int = 150, stride: int = 5):
        self.image_size, self.seed = int(image_size), int(seed)
        self.n_subjects, self.videos_per_subject = int(subjects), int(videos_per_subject)
        self.frames, self.stride = int(frames), int(stride)
        if self.n_subjects < 3:
            raise ValueError("synth-au needs at least 3 subjects (3 folds)")
        keep = np.arange(0, self.frames, self.stride)
        parts, keys, subj, nkey = [], [], [], []
        for s in range(self.n_subjects):
            ident = sample_identity(_rng(self.stream, self.seed, _K_IDENTITY, s))
            for j in range(self.videos_per_subject):
                vid = s * self.videos_per_subject + j
                rng = _rng(self.stream, self.seed, _K_VIDEO, vid)
                scene = sample_scene(rng)
                parts.append(_take(compose(ident, scene, simulate_video(rng, self.frames)), keep))
                keys += [f"S{s + 1:03d}/v{j + 1}/{f:04d}" for f in keep]
                subj += [f"S{s + 1:03d}"] * len(keep)
                nkey += [(vid, int(f)) for f in keep]
        self._params = concat_params(parts)
        self._noise_key = np.asarray(nkey, np.int64)
        self.keys, self.subjects = np.asarray(keys), np.asarray(subj)
        self.intensities = self._params["au"].astype(np.float32)
        self.targets = (self.intensities >= THRESHOLD).astype(np.int8)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, subjects: int = 60,
             videos_per_subject: int = 2, frames: int = 150, stride: int = 5) -> SynthAU:
        """Open the synthetic AU set (``root`` is ignored)."""
        return cls(image_size, seed, subjects, videos_per_subject, frames, stride)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        return _fingerprint(self.name, self.seed, self.image_size, {
            "subjects": self.n_subjects, "videos_per_subject": self.videos_per_subject,
            "frames": self.frames, "stride": self.stride})

    def folds(self) -> list[Fold]:
        """3 subject-independent folds: subjects shuffled (seeded) and split in thirds; fold i tests part i."""
        names = np.unique(self.subjects)
        perm = _rng(self.stream, self.seed, _K_FOLDS).permutation(len(names))
        parts = np.array_split(names[perm], 3)
        out = []
        for i, part in enumerate(parts):
            test = np.isin(self.subjects, part)
            out.append(Fold(f"fold{i + 1}", np.flatnonzero(~test), np.flatnonzero(test)))
        return out


#: Prototypical AU combinations per expression: variants of {AU: weight}; weight 1 = always
#: present (strong), < 1 = present with that probability.
_PROTOTYPES: dict[str, tuple[dict[int, float], ...]] = {
    "neutral": ({},),
    "happy": ({6: 1, 12: 1, 25: 0.5, 7: 0.3, 10: 0.3},),
    "sad": ({1: 1, 4: 1, 15: 1, 17: 0.5},),
    "surprise": ({1: 1, 2: 1, 25: 1, 26: 1},),
    "fear": ({1: 1, 2: 1, 4: 1, 7: 1, 25: 1, 26: 0.5},),
    "disgust": ({10: 1, 15: 1, 17: 1, 4: 0.3}, {4: 1, 10: 1, 7: 0.4}),
    "anger": ({4: 1, 7: 1, 23: 1, 24: 1},),
    "contempt": ({12: 1, 14: 1},),
}
_EXPR_P = np.array([0.16, 0.2, 0.11, 0.1, 0.09, 0.1, 0.12, 0.12])


def sample_expression(rng: np.random.Generator, label: int) -> tuple[np.ndarray, float]:
    """AU intensities ``[14]`` and mouth asymmetry of one still image of expression ``label``:
    a prototype with per-image jitter plus leakage of other AUs (classes overlap a little)."""
    au = rng.exponential(0.45, len(AUS))
    if rng.random() < 0.15:
        au[rng.integers(len(AUS))] += rng.uniform(1.0, 3.5)
    name = EXPRESSIONS[label]
    variants = _PROTOTYPES[name]
    for a, w in variants[rng.integers(len(variants))].items():
        if w >= 1:
            au[_A[a]] = max(au[_A[a]], rng.uniform(2.3, 5.0))
        elif rng.random() < w:
            au[_A[a]] = max(au[_A[a]], rng.uniform(1.2, 4.0))
    asym = rng.normal(0, 0.08)
    if name == "contempt":
        au[_A[12]] = rng.uniform(1.5, 3.5)
        asym = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.0)
    if name == "neutral" and rng.random() < 0.15:
        au[_A[25]] = rng.uniform(1.5, 3.0)
    return np.clip(au, 0, 5).astype(_F32), float(asym)


class SynthExpr(_RenderedFrames):
    """AffectNet-like still images of 8 expressions from AU prototypes; identity-disjoint 75/25 split."""

    name = "synth-expr"
    summary = "synthetic AffectNet-like expressions (8 classes, 400 identities x 8 stills, 75/25 split, AUC)"
    label_names = EXPRESSIONS
    metric = "auc"
    stream = _STREAM_EXPR

    def __init__(self, image_size: int = 64, seed: int = 0, identities: int = 400, images_per_identity: int = 8,
                 test_fraction: float = 0.25):
        self.image_size, self.seed = int(image_size), int(seed)
        self.identities, self.images_per_identity = int(identities), int(images_per_identity)
        self.test_fraction = float(test_fraction)
        if self.identities < 2:
            raise ValueError("synth-expr needs at least 2 identities (train/test)")
        parts, labels = [], []
        for s in range(self.identities):
            ident = sample_identity(_rng(self.stream, self.seed, _K_IDENTITY, s))
            for j in range(self.images_per_identity):
                rng = _rng(self.stream, self.seed, _K_IMAGE, s, j)
                label = int(rng.choice(len(EXPRESSIONS), p=_EXPR_P))
                parts.append(compose(ident, sample_scene(rng), _still_state(rng, label)))
                labels.append(label)
        n = len(labels)
        self._params = concat_params(parts)
        self._noise_key = np.stack([np.arange(n), np.zeros(n, np.int64)], 1)
        subj = np.repeat(np.arange(self.identities), self.images_per_identity)
        self.subjects = np.array([f"E{s + 1:04d}" for s in subj])
        self.keys = np.array([f"E{s + 1:04d}/{j:02d}" for s in range(self.identities)
                              for j in range(self.images_per_identity)])
        self.classes = np.asarray(labels, np.int64)
        self.targets = np.eye(len(EXPRESSIONS), dtype=np.int8)[self.classes]
        self.intensities = self._params["au"].astype(np.float32)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, identities: int = 400,
             images_per_identity: int = 8, test_fraction: float = 0.25) -> SynthExpr:
        """Open the synthetic expression set (``root`` is ignored)."""
        return cls(image_size, seed, identities, images_per_identity, test_fraction)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        return _fingerprint(self.name, self.seed, self.image_size, {
            "identities": self.identities, "images_per_identity": self.images_per_identity,
            "test_fraction": self.test_fraction})

    def folds(self) -> list[Fold]:
        """One identity-disjoint split: a seeded ``test_fraction`` of identities is the test set."""
        names = np.unique(self.subjects)
        perm = _rng(self.stream, self.seed, _K_FOLDS).permutation(len(names))
        n_test = min(max(1, round(len(names) * self.test_fraction)), len(names) - 1)
        test = np.isin(self.subjects, names[perm[:n_test]])
        return [Fold("test", np.flatnonzero(~test), np.flatnonzero(test))]


def _still_state(rng: np.random.Generator, label: int) -> dict[str, np.ndarray]:
    """State of one still image: expression AUs, its own pose, occasional blink, random gaze."""
    st = neutral_state(1)
    st["au"][0], st["asym"][0] = sample_expression(rng, label)
    for k, sd in (("yaw", 0.22), ("pitch", 0.09), ("roll", 0.07), ("tx", 0.03), ("ty", 0.03)):
        st[k][0] = rng.normal(0, sd)
    st["yaw"] = np.clip(st["yaw"], -0.55, 0.55)
    st["scale"][0] = 1 + rng.normal(0, 0.04)
    st["blink"][0] = rng.uniform(0.3, 1.0) if rng.random() < 0.05 else 0.0
    st["gaze_x"][0], st["gaze_y"][0] = np.clip(rng.normal(0, 0.35, 2), -1, 1)
    return st


# =============================================================================================
# Preview
# =============================================================================================

def preview_grid(out: Path, *, videos: int = 6, times: int = 10, image_size: int = 96, seed: int = 0,
                 stride: int = 5) -> Path:
    """Write a PNG grid of synth-vox frames (rows = videos of different identities, columns = every
    ``stride``-th frame) with each frame's active AUs (intensity >= 2) printed under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    ds = SynthVox.open(image_size=image_size, seed=seed, identities=videos)
    frames = [min(i * stride, ds.frames - 1) for i in range(times)]
    fig, axes = plt.subplots(videos, times, figsize=(times * 1.05, videos * 1.2), squeeze=False)
    for r in range(videos):
        video = r * ds.videos_per_identity
        imgs, au = ds.read_frames(video, frames), ds.intensities(video)[frames]
        for c, (img, a) in enumerate(zip(imgs, au)):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            active = " ".join(str(x) for x, on in zip(AUS, a >= THRESHOLD) if on)
            ax.set_xlabel(active or "-", fontsize=5.5, labelpad=1)
            if r == 0:
                ax.set_title(f"t={frames[c] / FPS:.1f}s", fontsize=6)
        axes[r, 0].set_ylabel(ds.identity(video), fontsize=6)
    fig.suptitle(f"synth-vox (seed {seed}): active AUs (intensity >= {THRESHOLD:g}) under each frame", fontsize=7)
    fig.tight_layout(pad=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
