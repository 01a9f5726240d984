"""Provenance of a result: the source revision, library versions and CPU kernels a rerun needs
(:func:`rerun_info`, :func:`versions`, :func:`cpu_kernels`), how the dataset's faces were prepared
(:func:`face_record`), the pretraining recipe and pretrained weights, and the result record that
carries them with the scores (:func:`result_record`).
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch

from ssfbench import version
from ssfbench.api.dataset import AccountsFaces, CountsFaces, LabeledFrames
from ssfbench.api.method import Method
from ssfbench.evaluation.probe import PROBE_DEFAULTS
from ssfbench.pipeline.spec import RunSpec
from ssfbench.results.records import SCHEMA, Result


def weights_record(method: Method) -> dict[str, Any]:
    """``{"pretrained_weights": identity}`` for a method on a pretrained trunk (the identity
    :mod:`ssfbench.nn.weights` computed, as its checkpoint records it), else ``{}`` (results unchanged)."""
    weights = getattr(method, "pretrained_weights", None)
    return {"pretrained_weights": weights} if weights else {}


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the ssfbench source checkout, or None (not a git checkout, no git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def rerun_info(spec: RunSpec) -> dict[str, Any]:
    """What a rerun needs beyond the result's own fields: the command line and the source revision."""
    return {"argv": list(spec.argv), "git": git_revision()}


def versions() -> dict[str, str]:
    """Library versions a rerun needs to match."""
    import sklearn

    return {"ssfbench": version.__version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


@functools.lru_cache(maxsize=1)
def cpu_kernels() -> dict[str, Any]:
    """The SIMD kernels torch and numpy dispatch to on this CPU. Like ``torch_threads``, they
    decide the last bits of float results: numpy's AVX-512 kernels round float32 work differently
    from its AVX2 ones, so a checkpoint's digest matches across machines only with the same numpy
    kernels (``NPY_DISABLE_CPU_FEATURES`` pins them; results/README.md says how)."""
    try:  # numpy keeps its dispatch table private; np.show_runtime() prints the same
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        numpy_kernels = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    except ImportError:
        numpy_kernels = None
    return {"torch": torch.backends.cpu.get_cpu_capability(), "numpy": numpy_kernels}


def result_record(*, run_id: str, config_hash: str, method: str, variant: str, display_name: str, backbone: str,
                  source: str, dataset: LabeledFrames, seed: int, scores: dict[str, Any], role: str,
                  faces_folder: Path | None = None, **extra: Any) -> Result:
    """One result (schema :data:`~ssfbench.results.records.SCHEMA`): identity, role, provenance, how the
    dataset's faces were prepared (``face_preprocessing``; ``faces_found`` counts how the faces read
    in this process were found), the CPU threads torch used and the SIMD kernels of this CPU
    (``torch_threads``, ``cpu_kernels``: checkpoint digests depend on both), scores, extras;
    validated as any results file is when read. For a real dataset ``face_preprocessing`` also holds
    the share of frames prepared the paper's way (:func:`face_record`; the frames that fell back are
    listed in ``faces_folder``, the run folder)."""
    scores = dict(scores)
    faces, found = face_record(dataset, faces_folder)
    device = scores.pop("probe_device", PROBE_DEFAULTS["device"])
    record = {
        "schema": SCHEMA, "protocol_version": version.PROTOCOL_VERSION,
        "ssfbench_version": version.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "config_hash": config_hash, "method": method, "variant": variant,
        "display_name": display_name, "backbone": backbone, "source": source, "role": role, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "seed": seed,
        "face_preprocessing": faces, **({"faces_found": found} if found else {}),
        "probe": {**PROBE_DEFAULTS, "seed": seed, "device": device},
        "versions": versions(), "torch_threads": torch.get_num_threads(),
        "cpu_kernels": dict(cpu_kernels()), **extra, **scores,
    }
    return Result.from_json(record, where=f"result of {run_id} on {dataset.name}")


def face_record(dataset: Any, folder: Path | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """``(face_preprocessing, faces_found)`` of a result on ``dataset``: how faces are cut and, for a
    real dataset (an adapter, or a prepared store, which counted every row), how every frame's face
    was prepared (``faces_found``) and the share of them prepared the paper's way
    (:func:`ssfbench.results.store.face_share`; ``paper`` is false when any frame fell back, and
    ``fallback_list`` names the list of those frames written into ``folder``)."""
    from ssfbench.results.store import OFF_PROTOCOL_THRESHOLD, face_share

    record = dict(getattr(dataset, "preprocessing", dict)())
    if isinstance(dataset, AccountsFaces):
        found = dataset.face_account(folder)
    else:
        found = dict(record.pop("faces_found", None) or (dataset.faces_found if isinstance(dataset, CountsFaces) else {}))
    if not found or "paper" not in record:
        return record, found
    share = face_share(found)
    record.update(share)
    if record["paper"] and 100.0 - (share["paper_percent"] or 0.0) > OFF_PROTOCOL_THRESHOLD:
        record["paper"] = False
    if share["fallback"] and folder is not None and isinstance(dataset, AccountsFaces):
        record["fallback_list"] = str(dataset.fallback_list(Path(folder)))
    return record, found


def recipe_extra(spec: RunSpec, method: Method, record: dict[str, Any]) -> dict[str, Any]:
    """``{"recipe": ...}`` (:func:`ssfbench.pipeline.recipe.result_record`) for a result whose encoder ssfbench
    pretrained here (a trainable method, steps > 0, not ``--weights``, not trained on labels), else
    ``{}``. The precision is the one pretraining recorded (older checkpoints: resolved for ``spec.device``)."""
    if not method.trainable or method.needs_labels or spec.weights is not None or spec.steps == 0:
        return {}
    from ssfbench.pipeline import recipe
    from ssfbench.runtime.device import resolve_device, resolved_precision

    precision = (record.get("pretrain") or {}).get("precision") or resolved_precision(resolve_device(spec.device),
                                                                                     spec.precision)
    settings = recipe.pretraining_settings(
        method=method.name, config=dataclasses.asdict(method.config), backbone=spec.backbone,
        pretrained=spec.pretrained, pretrain_data=spec.pretrain_data, image_size=spec.image_size, steps=spec.steps,
        epochs=spec.epochs, precision=precision)
    return {"recipe": recipe.result_record(spec.recipe, settings)}
