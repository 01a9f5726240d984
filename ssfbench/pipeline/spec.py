"""What defines one run: :class:`RunSpec` and the harness defaults, the method and datasets a spec
opens (:func:`build_method`, :func:`open_dataset`), the runs derived from it (its step-0 control,
the trained run whose statistics ``bn_stats="data"`` replaces) and its identity: config hash,
variant and run id (:func:`run_identity`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssfbench import version
from ssfbench.api.method import Method
from ssfbench.api.registry import get_dataset, get_method
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import sha256_file
from ssfbench.runtime.seeds import BATCHNORM_DRAW
from ssfbench.train.batchnorm import BN_BATCH, BN_FRAMES
from ssfbench.train.pretrain import DEFAULT_STEPS

DEFAULT_IMAGE_SIZE = 64
DEFAULT_EVAL_DATASETS = ("synth-au", "synth-expr")
#: the longest run id (a folder and file-name component; ids up to it are unchanged): a longer slug is
#: cut and marked with RUN_ID_ELLIPSIS, the config hash in the id keeping it unique
MAX_RUN_ID = 150
RUN_ID_ELLIPSIS = "~"
#: how re-estimated BatchNorm statistics are drawn: part of the identity of every run that has them
BATCHNORM_IDENTITY = {"frames": BN_FRAMES, "batch_size": BN_BATCH, "stream": BATCHNORM_DRAW}


@dataclass
class RunSpec:
    """Everything that defines one run; all but ``seed`` and the machinery go into ``config_hash``."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    backbone: str = "resnet18"
    image_size: int = DEFAULT_IMAGE_SIZE
    pretrained: str | None = None
    weights: Path | None = None
    #: BatchNorm statistics of the trained or loaded encoder: ``checkpoint`` (what training left, or
    #: the loaded file's) or ``data`` (re-estimated on the pretraining videos as every floor's and
    #: step-0 control's are: the control of whether a gain is weights or statistics)
    bn_stats: str = "checkpoint"
    steps: int = DEFAULT_STEPS
    seed: int = 0
    data_seed: int = 0
    pretrain_data: str = "synth-vox"
    datasets: tuple[str, ...] = DEFAULT_EVAL_DATASETS
    roots: dict[str, Path] = field(default_factory=dict)
    #: per-dataset keyword options for ``open`` (e.g. ``{"synth-vox": {"identities": 1000}}``)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path = Path("ssfbench-out")
    device: str = "auto"
    num_workers: int = 0
    overwrite: str = "only-missing"
    progress: bool = True
    #: continue from the run folder's ``last.pt``; False (``--fresh``) discards its checkpoints first
    resume: bool = True
    #: write ``last.pt`` every this many pretraining steps too (0: epoch ends and every 10 minutes)
    checkpoint_every: int = 0
    #: rows per embedding batch (and per resumable cache block); part of a partial cache's resume key
    embed_batch_size: int = 256
    #: the command line that started the run (recorded in results)
    argv: tuple[str, ...] = ()
    #: ``pretrain``: stop once the encoder is ready; ``embed``: once the caches are written; None: run all
    stop_after: str | None = None
    #: the ``probe`` stage: use the finished checkpoint and complete caches of earlier stages, never
    #: pretrain or embed (a missing one is a :class:`UserError` naming it)
    reuse_only: bool = False
    #: under torchrun: also compare the ranks' parameters every this many steps (0: epoch ends only)
    sync_check_every: int = 0
    #: ``run`` of a pretrained method also scores its step-0 control (:func:`init_control_spec`)
    init_control: bool = True
    #: also log pretraining curves to ``"tensorboard"`` (the CSV curve is always written)
    log: str | None = None
    #: pretraining arithmetic (``--precision``: ``auto``, ``fp32``, ``bf16``); part of the identity unless ``auto``
    precision: str = "auto"
    #: the ``--epochs`` that gave ``steps`` (None: steps were given); recorded, not part of the identity
    epochs: int | None = None
    #: the applied recipe's record (``{"name", "settings", "overrides"}``, :func:`ssfbench.pipeline.recipe.apply`;
    #: its values are already in the other fields); its name is part of the identity
    recipe: dict[str, Any] | None = None


def build_method(spec: RunSpec, num_labels: int | None = None) -> Method:
    """Instantiate the method with its defaults and the spec's overrides (bad keys -> UserError);
    ``num_labels`` sets the label count of a ``needs_labels`` method."""
    cls = get_method(spec.method)
    overrides = dict(spec.overrides) if num_labels is None else {**spec.overrides, "num_labels": num_labels}
    if num_labels is not None and "num_labels" not in {f.name for f in dataclasses.fields(cls.Config)}:
        from ssfbench.train.finetune import with_num_labels

        with_num_labels(spec.method, cls.Config(), num_labels)  # raises the UserError
    try:
        config = cls.Config().replace(**overrides)
    except KeyError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(cls.Config))
        raise UserError(f"method {spec.method!r} has no setting {exc.args[0]!r} (settings: {known})") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad setting for method {spec.method!r}: {exc}") from None
    try:
        method = cls(config, backbone=spec.backbone, image_size=spec.image_size, pretrained=spec.pretrained)
    except ValueError as exc:
        raise UserError(f"method {spec.method!r}: {exc}") from None
    check_input_size(method, spec)
    return method


def check_input_size(method: Method, spec: RunSpec) -> None:
    """One-line :class:`UserError` naming the option when a timm trunk of ``method`` takes only a fixed
    input size (a ViT's patch grid) other than the method's input size."""
    from ssfbench.nn.weights import check_input_size as check_trunk

    size = method.preprocess.input_size
    option = "--image-size" if size == spec.image_size else "--set input_size"
    for module in method.modules():
        if getattr(module, "pretrained_cfg", None) is not None and hasattr(module, "num_features"):
            check_trunk(module, spec.backbone, size, option)


def open_dataset(name: str, spec: RunSpec):
    """Open a registered dataset with the spec's image size, data seed, root and options (checked
    against and cast to the dataset's declared ``OPTIONS``: an unknown one or a bad value is a
    one-line ``UserError``)."""
    cls = get_dataset(name)
    options = cls.resolve_options(spec.dataset_options.get(name, {}), defaults=False, source="--data-option: ")
    try:
        return cls.open(spec.roots.get(name), image_size=spec.image_size, seed=spec.data_seed, **options)
    except (TypeError, ValueError) as exc:
        if not options:
            raise
        raise UserError(f"--data-option: dataset {name!r}: {exc}") from None


def uses_videos(spec: RunSpec, method: Method) -> bool:
    """Whether the run reads the pretraining videos: to pretrain, or to estimate BatchNorm
    statistics (of an untrained floor, ``Method.batchnorm_from_data``, or of loaded weights with
    ``bn_stats="data"``)."""
    if spec.weights is not None:
        return spec.bn_stats == "data"
    if method.needs_labels:
        return False
    return method.trainable or method.batchnorm_from_data()


def init_control_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """The run that scores ``spec``'s encoder at its own initialisation (``steps=0``: the same seeded
    weights, BatchNorm statistics re-estimated like the floor's), or None when there is none to pair
    with (untrained, loaded or label-trained methods, or a run that is itself at step 0)."""
    if not (method.trainable and uses_videos(spec, method)) or spec.steps == 0 or spec.weights is not None:
        return None
    frozen = frozen_control_spec(spec, method)
    return frozen if frozen is not None else dataclasses.replace(spec, steps=0, bn_stats="checkpoint")


def frozen_control_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """For a method whose trunk starts from pretrained weights (``--pretrained``): the ``frozen`` row of
    that trunk and those weights (``ssfbench run --method frozen --backbone B --pretrained P``, the
    ImageNet row for ``--pretrained imagenet``), evaluated with ``method``'s preprocessing; it is the
    method's step-0 control (its initialisation, without the untrained projection head). None when the
    method has no pretrained trunk or normalises its input otherwise than the weights do."""
    weights = getattr(method, "pretrained_weights", None)
    if not spec.pretrained or weights is None or spec.method == "frozen":
        return None
    from ssfbench.api.preprocess import Preprocess

    own = method.preprocess
    natural = method.pretrained_preprocess or Preprocess(input_size=spec.image_size)  # the frozen row's own
    if (own.mean, own.std) != (natural.mean, natural.std):
        return None
    overrides: dict[str, Any] = {}
    if own.input_size != natural.input_size:
        overrides["input_size"] = own.input_size
    if own.center_crop != natural.center_crop:
        overrides["crop_pct"] = own.center_crop
    return dataclasses.replace(spec, method="frozen", overrides=overrides, steps=0, bn_stats="checkpoint",
                               init_control=False)


def trained_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """For ``bn_stats="data"`` on a method this run pretrains: the same run with the statistics
    training left (whose checkpoint this one re-estimates); else None. A combination with no trained
    statistics to replace is one :class:`UserError`."""
    if spec.bn_stats != "data" or spec.weights is not None:
        return None
    if not method.trainable or method.needs_labels or spec.steps == 0:
        why = ("its encoder is untrained (the random floor's statistics: --set bn_stats=data|init)"
               if not method.trainable else "it trains one encoder per fold" if method.needs_labels
               else "a --steps 0 encoder has re-estimated statistics already")
        raise UserError(f"--bn-stats data: nothing to re-estimate for method {method.name!r}: {why}")
    return dataclasses.replace(spec, bn_stats="checkpoint", datasets=(), stop_after="pretrain", init_control=False)


#: variant parts whose name is not the flat setting key a recipe applies (``steps=`` comes from ``epochs``)
_RECIPE_PART_KEYS = {"steps": "epochs", "data": "pretrain_data", "size": "image_size", "init": "pretrained"}


def run_identity(spec: RunSpec, method: Method, pretrain_fingerprint: str | None) -> tuple[str, str, str]:
    """``(config_hash, variant, run_id)``. The variant names the method's own setting plus every
    setting that differs from the harness defaults, so leaderboard rows never mix budgets."""
    defaults = type(method).Config().to_dict()
    config = method.config.to_dict()
    identity = {"method": method.name, "config": config, "backbone": method.backbone, "image_size": spec.image_size,
                "pretrained": spec.pretrained, "protocol_version": version.PROTOCOL_VERSION}
    if spec.precision != "auto":
        identity["precision"] = spec.precision
    if spec.recipe is not None:
        identity["recipe"] = spec.recipe["name"]
    if getattr(method, "pretrained_weights", None):  # which file: other weights under one name are another run
        identity["pretrained_weights"] = {k: v for k, v in method.pretrained_weights.items() if k != "revision"}
    parts = [method.variant()] if method.variant() else []
    if spec.weights is not None:
        identity["weights_sha256"] = sha256_file(spec.weights)
        parts.append(f"weights={spec.weights.name}")
        if spec.bn_stats == "data":
            identity.update(pretrain_data=spec.pretrain_data, pretrain_fingerprint=pretrain_fingerprint)
            if spec.pretrain_data != "synth-vox":
                parts.append(f"data={spec.pretrain_data}")
            parts += [f"{spec.pretrain_data}.{k}={v}"
                      for k, v in sorted(spec.dataset_options.get(spec.pretrain_data, {}).items())]
    elif method.needs_labels:
        identity.update(steps=spec.steps, trained_on="each fold's training labels")
        if spec.steps != DEFAULT_STEPS:
            parts.append(f"steps={spec.steps}")
    elif uses_videos(spec, method):
        identity.update(pretrain_data=spec.pretrain_data, pretrain_fingerprint=pretrain_fingerprint)
        if method.trainable:
            identity["steps"] = spec.steps
            if spec.steps != DEFAULT_STEPS:
                parts.append(f"steps={spec.steps}")
        if not method.trainable or spec.steps == 0:
            identity["batchnorm"] = BATCHNORM_IDENTITY
        if spec.pretrain_data != "synth-vox":
            parts.append(f"data={spec.pretrain_data}")
        parts += [f"{spec.pretrain_data}.{k}={v}" for k, v in sorted(spec.dataset_options.get(spec.pretrain_data, {}).items())]
    if spec.bn_stats == "data":
        identity["batchnorm"] = BATCHNORM_IDENTITY
        parts.append("bn=data")
    variant_key = method.variant().split("=")[0] if method.variant() else None
    parts += [f"{k}={config[k]}" for k in sorted(config)
              if config[k] != defaults.get(k) and k != variant_key and k not in method.identity_settings]
    if spec.image_size != DEFAULT_IMAGE_SIZE:
        parts.append(f"size={spec.image_size}")
    if spec.pretrained:
        parts.append(f"init={Path(spec.pretrained).name}")
    if spec.precision != "auto":
        parts.append(f"precision={spec.precision}")
    if spec.recipe is not None:  # the recipe's own values are named by the recipe, overrides stay listed
        parts = [p for p in parts if _RECIPE_PART_KEYS.get(p.split("=")[0], p.split("=")[0]) not in spec.recipe["settings"]
                 or p == method.variant()]
        parts.insert(1 if method.variant() else 0, f"recipe={spec.recipe['name']}")
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    variant = " ".join(parts)
    slug = "-".join(p.replace("=", "") for p in parts) or "default"
    run_id = f"{method.name}-{slug}-{method.backbone}-{config_hash[:8]}-seed{spec.seed}"
    keep = len(slug)
    while len(run_id.encode()) > MAX_RUN_ID and keep > 0:  # a folder name (<= 255 bytes); the hash in it
        keep -= 1                                          # already tells configurations apart
        run_id = f"{method.name}-{slug[:keep]}{RUN_ID_ELLIPSIS}-{method.backbone}-{config_hash[:8]}-seed{spec.seed}"
    return config_hash, variant, run_id


def variant_settings(variant: str, method: Method) -> list[str]:
    """The parts of a run's ``variant`` other than the method's own setting (``method.variant()``,
    which :func:`run_identity` puts first): budgets, data, non-default settings."""
    parts = variant.split()
    own = method.variant().split()
    return parts[len(own):] if own and parts[:len(own)] == own else parts
