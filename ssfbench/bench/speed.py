"""Throughput of the harness measured against the model's own speed, in one process and one run:

- embedding: images on disk (a prepared store of JPEG face crops) to a finished HDF5 cache,
  against the encoder's forward pass on preloaded, preprocessed tensors of the same size;
- pretraining: the real loop (:func:`ssfbench.train.pretrain.pretrain`: window sampling, rendering or
  decoding, device copy, preprocessing, jitter, forward, backward, optimiser step) against
  forward + backward + step on preloaded, preprocessed windows;
- the synthetic renderer's frames/s against what a training step consumes;
- the linear probe against scikit-learn's class-weighted one-vs-rest logistic regression on the
  same synthetic embeddings (time and mean F1).

``ssfbench bench`` and ``tests/bench`` call these; each returns plain numbers so that the ratios a
benchmark asserts are the ratios it reports.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssfbench.api.dataset import LabeledFrames, VideoSource
from ssfbench.api.method import Method, eval_mode
from ssfbench.evaluation.embed import iter_embeddings
from ssfbench.runtime.device import autocast, resolve_device
from ssfbench.train.steps import make_optimizer, training_step


def paired(reference: Callable[[], float], pipeline: Callable[[], Any], rounds: int = 3) -> tuple[float, Any]:
    """``(median reference, median pipeline)`` of ``rounds`` alternating measurements, so that drift
    and noise of a shared machine hit both sides alike (a pipeline returning a tuple gets
    element-wise medians)."""
    refs, pipes = [], []
    for _ in range(rounds):
        refs.append(reference())
        pipes.append(pipeline())
    if isinstance(pipes[0], tuple):
        return float(np.median(refs)), tuple(float(np.median(col)) for col in zip(*pipes))
    return float(np.median(refs)), float(np.median(pipes))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``fn()`` takes, the device's queue drained before and after."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def model_embed_rate(method: Method, batch_size: int, batches: int, device: str | torch.device) -> float:
    """Frames/s of ``method.embed`` alone: random preprocessed inputs already on the device, the
    same inference path as :func:`ssfbench.evaluation.embed.iter_embeddings` (eval, inference mode, bf16 autocast
    and channels-last on CUDA); one warm-up batch."""
    device = resolve_device(str(device))
    size = method.preprocess.input_size
    images = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    method.to(device)
    x = method.preprocess(images.to(device))
    if device.type == "cuda":
        method.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run(n: int) -> None:
        for _ in range(n):
            with autocast(device):
                method.embed(x).float().cpu()

    with eval_mode(method), torch.inference_mode():
        run(1)
        seconds = _timed(lambda: run(batches), device)
    return batch_size * batches / seconds


def pipeline_embed_rate(method: Method, dataset: LabeledFrames, *, batch_size: int, device: str | torch.device,
                        num_workers: int, cache_path: Path | None = None) -> float:
    """Frames/s from ``dataset`` (rows read and decoded as a run reads them) to a finished HDF5
    cache, through :func:`ssfbench.evaluation.cache.cached_embeddings` as ``ssfbench run`` calls it."""
    from ssfbench.evaluation.cache import cached_embeddings

    device = str(resolve_device(str(device)))
    attrs = {"method": method.name, "checkpoint_sha256": "bench", "dataset": dataset.name,
             "dataset_fingerprint": dataset.fingerprint(), "preprocess": method.preprocess.to_json(),
             "ssfbench_version": "bench"}

    def compute_from(start: int):
        return iter_embeddings(method, method.preprocess, dataset, batch_size=batch_size, device=device,
                               num_workers=num_workers, progress=False, start=start)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(cache_path or Path(tmp) / "bench.h5")
        seconds = _timed(lambda: cached_embeddings(path, attrs, dataset.keys, overwrite="always",
                                                   compute_from=compute_from), torch.device(device))
    return len(dataset) / seconds


def model_train_rate(method: Method, windows: torch.Tensor, steps: int, device: str | torch.device) -> float:
    """Frames/s of forward + backward + optimiser step alone, on one preloaded, preprocessed batch
    of windows (uint8 ``[B, T, S, S, 3]``) already on the device; one warm-up step."""
    device = resolve_device(str(device))
    method.to(device)
    if device.type == "cuda":
        method.to(memory_format=torch.channels_last)
    x = method.preprocess(windows.to(device))
    optimizer = make_optimizer(method)
    method.train()

    def run(n: int) -> None:
        for _ in range(n):
            loss = training_step(optimizer, device, lambda: method.training_loss(x))
            float(loss.detach())  # the loop reads the loss every step too

    run(1)
    seconds = _timed(lambda: run(steps), device)
    return windows.shape[0] * windows.shape[1] * steps / seconds


def pipeline_train_rate(method: Method, videos: VideoSource, *, steps: int, device: str | torch.device,
                        num_workers: int, run_dir: Path | None = None) -> tuple[float, float]:
    """Frames/s of the real pretraining loop over ``steps`` steps: ``(loop, end to end)``. ``loop``
    is the ``train_frames_per_s`` the loop records (data, copies, preprocessing, jitter, forward,
    backward, step; validation and checkpoint writes excluded), the first epoch, which holds the
    start-up, left out when there are more; ``end to end`` is all training frames over the wall
    time of the whole :func:`~ssfbench.train.pretrain.pretrain` call, validation and checkpoints included."""
    from ssfbench.train.pretrain import PretrainSettings, pretrain

    settings = PretrainSettings(steps=steps, device=str(device), num_workers=num_workers, progress=False,
                                checkpoint_minutes=0)
    frames_per_step = method.config.batch_size * len(method.frame_offsets())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = pretrain(method, videos, settings, Path(run_dir or tmp))
        wall = time.perf_counter() - start
    records = [h for h in result.history if "train_frames_per_s" in h]
    steps_in = np.diff([0] + [h["step"] for h in records])
    if len(records) > 1:
        records, steps_in = records[1:], steps_in[1:]
    seconds = sum(n * frames_per_step / h["train_frames_per_s"] for n, h in zip(steps_in, records))
    return int(steps_in.sum()) * frames_per_step / seconds, steps * frames_per_step / wall


def render_rate(videos: VideoSource, method: Method, steps: int, seed: int = 0) -> float:
    """Frames/s at which ``videos`` produce the windows of pretraining steps, in this process."""
    from ssfbench.train.windows import VALIDATION_FRACTION, WindowBatches, split_videos

    stream = WindowBatches(videos, split_videos(len(videos), VALIDATION_FRACTION, seed)[0], method, seed)
    stream[0]
    start = time.perf_counter()
    frames = sum(int(np.prod(stream[s].shape[:2])) for s in range(1, steps + 1))
    return frames / (time.perf_counter() - start)


#: eigenvalue decay of the synthetic embeddings' covariance (``i ** -SPECTRUM``): the power law fitted
#: to our ResNet-18 encoders' synth-au embeddings (ranking -1.5, N-pair -1.6, random init -2.0)
SPECTRUM = 1.5


def synthetic_embeddings(n: int = 150_000, dim: int = 256, labels: int = 12, subjects: int = 41,
                         seed: int = 0, spectrum: float = SPECTRUM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x float32 [n, dim] L2-normalised, y int8 [n, labels], subject ids [n])`` shaped like a
    learned embedding: independent latent factors (plus a per-subject offset, for
    subject-independent folds) seen through a random rotation with variances ``i ** -spectrum``
    (``spectrum=0``: isotropic), labels from a noisy linear rule over the latent factors with base
    rates from 5 % to 45 % (BP4D-like)."""
    rng = np.random.default_rng(seed)
    subject = rng.integers(0, subjects, n)
    z = rng.standard_normal((n, dim), dtype=np.float32)
    z += 0.5 * rng.standard_normal((subjects, dim), dtype=np.float32)[subject]
    w = rng.standard_normal((dim, labels)).astype(np.float32)
    score = z @ w
    score += rng.standard_normal(score.shape).astype(np.float32) * score.std(axis=0) * 1.5
    rates = np.linspace(0.05, 0.45, labels)
    thresholds = np.array([np.quantile(score[:, c], 1 - rates[c]) for c in range(labels)])
    y = (score > thresholds).astype(np.int8)
    scales = np.arange(1, dim + 1, dtype=np.float32) ** (-spectrum / 2)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    x = (z * scales) @ rotation
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y, subject


def probe_against_sklearn(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int = 3,
                          device: str = "cpu", sklearn: bool = True) -> dict[str, float]:
    """Seconds and mean F1 (x100, over labels and folds) of the protocol's probe and, unless
    ``sklearn`` is False, of ``OneVsRestClassifier(LogisticRegression(class_weight="balanced"))``
    (scikit-learn's defaults: lbfgs, at most 100 iterations) on the same subject-independent
    folds (``GroupKFold``); ``sklearn_unconverged`` counts its fits that stopped at the limit."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold
    from sklearn.multiclass import OneVsRestClassifier

    from ssfbench.evaluation.probe import fit_predict

    splits = list(GroupKFold(n_splits=folds).split(x, y, groups))
    out: dict[str, float] = {}
    for name in ("probe", "sklearn") if sklearn else ("probe",):
        f1s, start = [], time.perf_counter()
        for train, test in splits:
            if name == "probe":
                pred = fit_predict(x[train], y[train], x[test], device=device) >= 0.5
            else:
                clf = OneVsRestClassifier(LogisticRegression(class_weight="balanced"))  # defaults, as people run it
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    pred = clf.fit(x[train], y[train]).predict(x[test])
                out["sklearn_unconverged"] = out.get("sklearn_unconverged", 0) + sum(
                    issubclass(w.category, ConvergenceWarning) for w in caught)
            f1s.append(f1_score(y[test], pred, average=None, zero_division=0))
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_f1"] = float(np.mean(f1s) * 100)
    return out




def prepared_stores(folder: Path, image_size: int, identities: int) -> tuple[Path, Path]:
    """``(synth-au JPEG face-crop store, synth-vox video store)`` in ``folder``, written once and
    reused (their names carry the options)."""
    from ssfbench.datasets._prepared import write_prepared
    from ssfbench.datasets.synthetic import SynthAU, SynthVox

    folder.mkdir(parents=True, exist_ok=True)
    images = folder / f"synth-au-{image_size}-jpeg.h5"
    if not images.is_file():
        write_prepared(SynthAU.open(image_size=image_size), images, codec="jpeg", progress=False)
    videos = folder / f"synth-vox-{image_size}-{identities}ids.h5"
    if not videos.is_file():
        SynthVox.prepare(None, videos, image_size=image_size, identities=identities, progress=False)
    return images, videos


def run_suite(*, device: str = "auto", image_size: int = 64, embed_batch_size: int = 256, steps: int = 40,
              num_workers: int = 0, identities: int = 100, folder: Path, probe: bool = True,
              render: bool = True, probe_rows: int = 150_000, rounds: int = 3, progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every measurement of this module with the ranking method (k=2, ResNet-18) at ``image_size``,
    each ratio from the medians of ``rounds`` alternating measurements (:func:`paired`); one row per
    measurement: what, pipeline and reference rates, ratio, unit and target."""
    from ssfbench.api.registry import get_method
    from ssfbench.datasets._prepared import open_prepared
    from ssfbench.datasets.synthetic import SynthVox
    from ssfbench.train.windows import VALIDATION_FRACTION, WindowBatches, split_videos

    def ranking() -> Method:
        torch.manual_seed(0)
        return get_method("ranking")(get_method("ranking").Config(k=2), image_size=image_size)

    rows: list[dict[str, Any]] = []
    image_store, video_store = prepared_stores(folder, image_size, identities)
    progress(f"embedding: JPEG store -> HDF5 cache, and the encoder alone ({rounds} rounds each)")
    frames = open_prepared(image_store, "synth-au")
    model, pipe = paired(lambda: model_embed_rate(ranking(), embed_batch_size, 8, device),
                         lambda: pipeline_embed_rate(ranking(), frames, batch_size=embed_batch_size, device=device,
                                                     num_workers=num_workers), rounds)
    rows.append({"what": "embedding (JPEG store -> HDF5 cache) vs encoder forward", "pipeline": pipe,
                 "reference": model, "ratio": pipe / model, "unit": "frames/s", "target": 0.9})
    rendered = SynthVox.open(image_size=image_size, identities=identities)
    windows = WindowBatches(rendered, split_videos(len(rendered), VALIDATION_FRACTION, 0)[0], ranking(), 0)[0]
    sources = [("prepared video store", SynthVox.open(video_store, image_size=image_size, identities=identities))]
    if render:
        sources.append(("rendered on the fly", rendered))
    for label, videos in sources:
        progress(f"pretraining: {steps} steps, frames {label}, and the model alone ({rounds} rounds each)")
        model, (pipe, end_to_end) = paired(
            lambda: model_train_rate(ranking(), windows, max(3, steps // 4), device),
            lambda videos=videos: pipeline_train_rate(ranking(), videos, steps=steps, device=device,
                                                      num_workers=num_workers),
            rounds)
        rows.append({"what": f"pretraining ({label}) vs forward+backward", "pipeline": pipe, "reference": model,
                     "ratio": pipe / model, "unit": "frames/s", "target": 0.85 if "store" in label else None,
                     "end_to_end": end_to_end, "end_to_end_ratio": end_to_end / model})
    progress("synthetic renderer, one process")
    rate = render_rate(rendered, ranking(), steps=4)  # against the model's median forward+backward above
    rows.append({"what": "synthetic renderer (1 process) vs what training consumes", "pipeline": rate,
                 "reference": model, "ratio": rate / model, "unit": "frames/s", "target": 1.0})
    if probe:
        progress(f"probe: 3 folds x 12 AUs on {probe_rows} x 256 embeddings, ours and scikit-learn's")
        x, y, groups = synthetic_embeddings(n=probe_rows)
        probe_device = str(resolve_device(device))
        out = probe_against_sklearn(x, y, groups, device=probe_device)
        rows.append({"what": "linear probe vs sklearn LogisticRegression OvR (time)", "pipeline": out["sklearn_s"],
                     "reference": out["probe_s"], "ratio": out["sklearn_s"] / out["probe_s"], "unit": "s (sklearn, probe)",
                     "target": 5.0, "probe_f1": out["probe_f1"], "sklearn_f1": out["sklearn_f1"],
                     "sklearn_unconverged": out.get("sklearn_unconverged", 0)})
    return rows


__all__ = ["paired", "model_embed_rate", "pipeline_embed_rate", "model_train_rate", "pipeline_train_rate",
           "render_rate", "synthetic_embeddings", "probe_against_sklearn", "prepared_stores", "run_suite"]
