"""The method contract: what a self-supervised method owns, on a small base class.

The harness owns everything methods share (training loop, devices, checkpoints, embedding,
caching, the probe, tables). A method owns only its model, which frames of a video one training
example takes, its loss, its preprocessing and its defaults. ``docs/adding-a-method.md`` is the guide.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ssfbench.api.preprocess import Preprocess, preprocess_from
from ssfbench.api.settings import cast_like


@dataclass
class MethodConfig:
    """Defaults every method has; a method subclasses this to add its own (k, margin, ...).

    Optimiser fields are the method's defaults because the papers differ (ranking: SGD 1e-3).
    """

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 16
    #: crop jitter: a random crop of side ``s ~ U(jitter, 1)`` (fraction of the image) at a random
    #: position, resized back; 1.0 disables it. The released code crops 213 of 224 px (0.95).
    jitter: float = 0.95
    #: the released code draws a crop per frame; by default one crop is shared by all frames of an
    #: example, so augmentation never adds distance between frames that the loss would have to
    #: undo (per-frame jitter drove the ranking loss towards collapse on the synthetic benchmark)
    jitter_per_frame: bool = False
    #: ``per_epoch``: a fresh anchor per video every epoch; ``fixed``: one anchor (window) per video
    #: drawn once from the seed and used in every epoch, one window per video per epoch (the released
    #: ranking code's ``rank_dataset.py``)
    anchor: Literal["per_epoch", "fixed"] = "per_epoch"
    #: ``whole``: the whole frame resized, plus ``jitter``; ``released``: the released ranking code's
    #: framing (:mod:`ssfbench.api.framing`: resize 256, pad 24, centre crop 224, a random crop of one
    #: side drawn from the seed in [200, 224) per image, resize), at training and validation time,
    #: ``jitter`` unused; its embeddings take the central 224/256 of the frame
    framing: Literal["whole", "released"] = "whole"
    #: the checkpoint a run keeps: ``best`` by the method's validation metric (``Method.selection``)
    #: or ``last``, the last epoch's (the released ranking code saves every epoch and selects none)
    select: Literal["best", "last"] = "best"

    #: settings added after results were published: :meth:`to_dict` leaves them out while they hold
    #: their default, so checkpoints, config hashes and run ids of runs that do not use them stay
    #: byte-for-byte what they were
    LATE_SETTINGS: ClassVar[tuple[str, ...]] = ("anchor", "framing", "select", "forward_passes")

    def replace(self, **overrides: Any) -> MethodConfig:
        """A copy with ``overrides`` applied; values are cast to the field's type
        (:func:`ssfbench.api.settings.cast_like`: bools from true/false/1/0/yes/no); an unknown key is a
        ``KeyError``, a value that does not fit a ``ValueError`` naming the key."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        cast = {}
        for key, value in overrides.items():
            if key not in fields:
                raise KeyError(key)
            try:
                cast[key] = cast_like(value, getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            allowed = self.choices(key)
            if allowed is not None and cast[key] not in allowed:
                raise ValueError(f"{key}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
        return dataclasses.replace(self, **cast)

    @classmethod
    def choices(cls, key: str) -> tuple[Any, ...] | None:
        """The values a ``Literal[...]`` setting allows (None: any value of its type)."""
        hint = typing.get_type_hints(cls).get(key)
        return typing.get_args(hint) if typing.get_origin(hint) is Literal else None

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain dict, except a :data:`LATE_SETTINGS` one at its default."""
        out = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in self.LATE_SETTINGS and out[f.name] == f.default:
                del out[f.name]
        return out


class Method(nn.Module, abc.ABC):
    """A self-supervised method: an ``nn.Module`` holding the model it trains.

    Subclasses set ``name``, ``summary``, ``Config`` and implement ``build`` (create modules),
    ``embed`` (evaluation embedding, encoder only) and, when ``trainable``, ``training_loss``.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: False for floors such as ``random``: the harness saves the initial weights without training
    trainable: ClassVar[bool] = True
    #: the validation metric used to select the best checkpoint and whether higher is better
    selection: ClassVar[tuple[str, Literal["max", "min"]]] = ("val_loss", "min")
    #: True for methods trained on each evaluation fold's TRAINING labels instead of on videos (the
    #: ``supervised`` ceiling): the harness skips pretraining, sets ``config.num_labels`` to the
    #: dataset's label count and trains one copy per fold with ``label_loss`` (own checkpoint and
    #: embedding cache per fold) before the same frozen-encoder probe
    needs_labels: ClassVar[bool] = False
    #: where tables put the method's rows: ``self-supervised``, ``supervised`` (trained on the
    #: evaluation labels) or ``floor`` (a reference every method should beat); recorded in results
    role: ClassVar[Literal["self-supervised", "supervised", "floor"]] = "self-supervised"
    #: the setting that ``--k 1 2 4``-style runs vary to build an ensemble row (concatenated
    #: embeddings of one encoder per value); None: the method has no ensemble
    ensemble_axis: ClassVar[str | None] = None
    #: for methods that evaluate a given file in a format of their own (e.g. ``"a TorchScript archive"``)
    #: rather than a state dict: the harness requires ``--weights``, hands its path to
    #: :meth:`load_weights_file` (it never ``torch.load`` s such a file) and evaluates it as saved (no
    #: ``--bn-stats data``); None: ``--weights`` is optional and read as a state dict
    weights_format: ClassVar[str | None] = None
    #: settings that identify a run (they are in its config hash) but are not spelled out in its
    #: variant, e.g. a content digest and the row name of an encoder given in Python
    identity_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: MethodConfig | None = None, *, backbone: str = "resnet18",
                 image_size: int = 64, pretrained: str | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.Config()
        self.backbone = backbone
        self.image_size = image_size
        self.pretrained = pretrained
        #: set when weights released by a method's authors are loaded: their preprocessing
        #: (``released_preprocess``), which then replaces ``default_preprocess`` and is saved
        #: with the checkpoint, so it travels with the weights
        self.weights_preprocess: Preprocess | None = None
        self.build()
        from ssfbench.nn.encoders import trunk_weights

        loaded = trunk_weights(self)
        #: identity of the pretrained trunk's weights (``--pretrained``: tag, source, file, sha256; owned by
        #: :mod:`ssfbench.nn.weights`), recorded in checkpoints, caches and results; None without one
        self.pretrained_weights: dict[str, Any] | None = dict(loaded.identity) if loaded is not None else None
        #: the weights' own data config as preprocessing (timm ``pretrained_cfg``), when they have one
        self.pretrained_preprocess: Preprocess | None = None
        if loaded is not None and loaded.data_config:
            self.pretrained_preprocess = preprocess_from(loaded.data_config, loaded.identity["tag"])

    # ---- what a method must say -------------------------------------------------------------
    @abc.abstractmethod
    def build(self) -> None:
        """Create the modules (called once from ``__init__``, after ``config`` etc. are set)."""

    @abc.abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, S, S]`` -> embeddings ``[B, D]`` used for evaluation."""

    def frame_offsets(self) -> list[int]:
        """Frames one training example takes, as offsets from an anchor frame (``[0]`` = one frame)."""
        return [0]

    def sample_offsets(self, rng: np.random.Generator) -> list[int]:
        """Offsets of one example; override for random gaps (e.g. any two frames of a clip). Must
        stay within ``window_span()`` and use only ``rng`` for randomness (reproducible streams)."""
        return self.frame_offsets()

    def window_span(self) -> int:
        """How many consecutive frames an example may cover (videos shorter than this are skipped)."""
        offsets = self.frame_offsets()
        return max(offsets) - min(offsets) + 1

    def training_loss(self, frames: torch.Tensor) -> torch.Tensor:
        """Loss on a batch of examples ``[B, T, 3, S, S]`` (``T = len(frame_offsets())``)."""
        raise TypeError(f"method {self.name!r} is not trainable")

    def label_loss(self, images: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
        """Loss on labelled images ``[B, 3, S, S]`` with ``targets`` ``[B, C]`` (1 present, 0 absent,
        -1 unknown) and the probe's per-label positive weights ``[C]`` (``needs_labels`` methods only)."""
        raise TypeError(f"method {self.name!r} does not train on labels (needs_labels is False)")

    @torch.no_grad()
    def validation_metrics(self, frames: torch.Tensor) -> dict[str, float]:
        """Metrics on one held-out batch (averaged over batches by the harness)."""
        return {"val_loss": float(self.training_loss(frames))}

    # ---- what a method may refine -----------------------------------------------------------
    @property
    def preprocess(self) -> Preprocess:
        """Input size and normalisation; saved with every checkpoint and embedding cache: the
        preprocessing of loaded released weights when there are some, else ``default_preprocess``
        (with ``framing=released``, its central 224/256 of the frame: the released crop's framing
        without its randomness, as the released weights are embedded)."""
        if self.weights_preprocess is not None:
            return self.weights_preprocess
        own = self.default_preprocess()
        if self.config.framing == "released":
            from ssfbench.api.framing import CENTER, FRAME

            return dataclasses.replace(own, center_crop=CENTER / FRAME)
        return own

    def default_preprocess(self) -> Preprocess:
        """The method's own input size and normalisation (ImageNet statistics by default); on a
        pretrained trunk (``--pretrained``), its weights' data config (timm's ``pretrained_cfg``: input
        size, mean/std, crop fraction) when they have one. Override to say otherwise."""
        return self.pretrained_preprocess or Preprocess(input_size=self.image_size)

    def released_preprocess(self) -> Preprocess | None:
        """What the authors' code does to the input of their released weights (None: the same as
        ``default_preprocess``); applied once such weights are loaded."""
        return None

    @property
    @abc.abstractmethod
    def embed_dim(self) -> int:
        """Width of ``embed``'s output (every method declares it: results, checkpoints and
        ``mock-run``'s shape check rely on it)."""

    def variant(self) -> str:
        """Short label of the method-specific setting (e.g. ``k=2``); empty when there is none."""
        return ""

    def display_name(self) -> str:
        """Row name in tables, e.g. ``Ranking k=2``."""
        v = self.variant()
        return f"{self.name.capitalize()} {v}".strip()

    def batchnorm_from_data(self) -> bool:
        """For untrained methods (``trainable`` False): whether the harness re-estimates their BatchNorm
        statistics on the pretraining videos before embedding (:mod:`ssfbench.train.batchnorm`), so they
        are evaluated like trained encoders. Trained methods get theirs from training; any method
        scored at ``--steps 0`` is re-estimated the same way."""
        return False

    @classmethod
    def ensemble_display_name(cls) -> str:
        """Row name of an ensemble along ``ensemble_axis``, e.g. ``Ranking Ensemble``."""
        return f"{cls.name.capitalize()} Ensemble"

    def released_state_dict(self, payload: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The model's state dict inside a released weights file's top-level dict: its ``state_dict``
        entry when there is one, else the dict itself. Override for releases that store it elsewhere."""
        state = payload.get("state_dict")
        return state if isinstance(state, dict) else payload

    def load_weights_file(self, path: Path) -> None:
        """Load the ``--weights`` file of a method that declares a ``weights_format`` (the others'
        files are read as state dicts by :func:`ssfbench.api.checkpoint.load_weights`). A file that is
        not of the format raises :class:`~ssfbench.errors.UserError` naming it."""
        raise TypeError(f"method {self.name!r} declares no weights_format; its --weights are state dicts")

    def load_released_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load weights released in another layout (the default: this module's own layout)."""
        self.load_state_dict(state_dict)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode; restore each one's own mode on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
