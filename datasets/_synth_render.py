"""The synthetic benchmark's renderer: render parameters -> pixels.

A frame is a dict of per-frame parameters (identity, scene, pose, AU intensities, blink, gaze;
:func:`neutral_state` lists the per-frame keys, :func:`compose` broadcasts an identity and a scene
over them). Faces are drawn as anti-aliased signed-distance shapes (ellipses, bands between curves,
lines) in vectorised numpy over a batch ``[B, H, W]``. Sensor noise of a frame comes from a
generator keyed by (dataset, seed, video, frame) (:func:`frame_noise`), so pixels never depend on
call order. Every generator of the synthetic benchmark is made by :func:`synth_rng` (streams:
:mod:`ssfbench.runtime.seeds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssfbench.runtime.seeds import SYNTH_NOISE, SYNTH_WORLD

#: The AUs the renderer animates, in the column order of the ``au`` parameter (and label order).
AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24, 25, 26)
#: AU -> its column in the ``au`` parameter.
AU_INDEX: dict[int, int] = {a: i for i, a in enumerate(AUS)}
#: The dtype of every render parameter and of the float image.
F32 = np.float32

_A = AU_INDEX
_F32 = F32


def synth_rng(*key: int) -> np.random.Generator:
    """A generator keyed by a tuple of non-negative ints (order-independent determinism):
    ``default_rng([SYNTH_WORLD, *key])``."""
    return np.random.default_rng([SYNTH_WORLD, *(int(k) for k in key)])


# =============================================================================================
# Render parameters
# =============================================================================================

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


def take_rows(params: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``rows`` of every per-frame parameter array."""
    return {k: v[rows] for k, v in params.items()}


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
        out[i] = synth_rng(stream, seed, SYNTH_NOISE, video, int(f)).standard_normal((image_size, image_size, 3), _F32)
    return out


__all__ = ["AUS", "AU_INDEX", "F32", "synth_rng", "neutral_state", "compose", "concat_params", "take_rows",
           "render_frames", "frame_noise"]
