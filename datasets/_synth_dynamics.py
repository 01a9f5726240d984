"""The synthetic benchmark's people and their motion: identity and scene sampling, talking-face
trajectories (:func:`simulate_video`) and the expressions of still images (:func:`sample_expression`).

Everything here turns a generator into render parameters (see :mod:`ssfbench.datasets._synth_render`);
nothing draws pixels. Trajectories of a whole video are simulated at once (cheap).
"""

from __future__ import annotations

import numpy as np

from ssfbench.datasets._synth_render import AU_INDEX, AUS, F32, neutral_state

#: The expression classes of ``synth-expr``, in label order.
EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
#: Frame rate of the synthetic videos.
FPS = 25.0

_A = AU_INDEX
_F32 = F32


# =============================================================================================
# Identity and scene
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
# Still images of expressions
# =============================================================================================

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
#: How often each expression is drawn for a still (``EXPRESSIONS`` order).
EXPRESSION_WEIGHTS = np.array([0.16, 0.2, 0.11, 0.1, 0.09, 0.1, 0.12, 0.12])


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


def still_state(rng: np.random.Generator, label: int) -> dict[str, np.ndarray]:
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


__all__ = ["EXPRESSIONS", "EXPRESSION_WEIGHTS", "FPS", "sample_identity", "sample_scene", "simulate_video",
           "sample_expression", "still_state"]
