"""The ``torchscript`` method: any TorchScript (or ``torch.export`` ``.pt2``) module, frozen.

``ssfbench run --method torchscript --weights FILE.pt --set input_size=224 [--set mean=R,G,B --set
std=R,G,B]`` evaluates a module mapping float images ``[B, 3, H, W]`` to embeddings ``[B, D]``, as
it was saved: no training, no BatchNorm re-estimation. The file is read with ``torch.jit.load``
(``torch.export.load`` for a ``.pt2``), which runs no pickled Python code. Its bytes travel inside
the run's checkpoint (extra state), so the checkpoint's sha256, and with it the embedding caches,
follow the file's content; the run id names the file's sha256 (``--weights`` identity).

Preprocessing: images are resized to ``input_size`` (0, the default: ``--image-size``), scaled to
[0, 1] and normalised with ``mean``/``std`` (``imagenet``, the default, or three comma-separated
numbers; ``0,0,0`` and ``1,1,1`` give raw [0, 1] input).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssfbench.api.method import MethodConfig
from ssfbench.api.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ssfbench.api.wrapped import FrozenModuleMethod
from ssfbench.errors import UserError

#: file suffix of a ``torch.export`` program (anything else is read as TorchScript)
EXPORT_SUFFIX = ".pt2"


@dataclass
class TorchScriptConfig(MethodConfig):
    """``input_size`` (0: ``--image-size``), ``mean``/``std`` (``imagenet`` or ``R,G,B``) and
    ``center_crop`` (fraction of each side kept before resizing) of the module's input."""

    input_size: int = 0
    mean: str = "imagenet"
    std: str = "imagenet"
    center_crop: float = 1.0


def _triple(value: str, key: str, imagenet: tuple[float, float, float]) -> tuple[float, float, float]:
    """``imagenet`` or ``R,G,B`` as three floats (``ValueError`` naming ``key`` otherwise)."""
    if value.strip().lower() == "imagenet":
        return imagenet
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ValueError(f"{key}: expected imagenet or three comma-separated numbers (R,G,B), got {value!r}")
    return parts  # type: ignore[return-value]


class _Exported(torch.nn.Module):
    """A ``torch.export`` program's module, which refuses ``train()``/``eval()`` (it is frozen in
    the mode it was exported in): held outside the module tree and moved to the input's device."""

    def __init__(self, program_module: torch.nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "program", program_module)  # not a child: the harness's eval() never reaches it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = next(iter([*self.program.parameters(), *self.program.buffers()]), None)
        if first is not None and first.device != x.device:
            self.program.to(x.device)
        return self.program(x)


class TorchScriptEncoder(FrozenModuleMethod):
    """A TorchScript / ``torch.export`` module given with ``--weights``, frozen."""

    name = "torchscript"
    summary = ("any TorchScript (or torch.export .pt2) module [B,3,H,W] -> [B,D] given with --weights FILE, frozen; "
               "--set input_size=224 mean=R,G,B std=R,G,B")
    Config = TorchScriptConfig
    weights_format = "a TorchScript archive saved by torch.jit.save, or a torch.export .pt2 program"

    def build(self) -> None:
        cfg = self.config
        if cfg.input_size < 0 or (cfg.input_size and cfg.input_size < 16):
            raise ValueError(f"input_size must be 0 (--image-size) or at least 16, got {cfg.input_size}")
        if not 0 < cfg.center_crop <= 1:
            raise ValueError(f"center_crop must be in (0, 1], got {cfg.center_crop}")
        self._mean = _triple(cfg.mean, "mean", IMAGENET_MEAN)
        self._std = _triple(cfg.std, "std", IMAGENET_STD)
        if any(s == 0 for s in self._std):
            raise ValueError(f"std: no channel may be 0, got {cfg.std!r}")
        self.backbone = "torchscript"
        self.module = None
        self._archive: dict[str, Any] | None = None

    def default_preprocess(self) -> Preprocess:
        return Preprocess(input_size=self.config.input_size or self.image_size, mean=self._mean, std=self._std,
                          center_crop=self.config.center_crop)

    @property
    def embed_dim(self) -> int:
        if self._archive is None:
            raise UserError(f"method {self.name!r}: no module loaded (give --weights FILE)")
        return int(self._archive["embed_dim"])

    def display_name(self) -> str:
        return f"TorchScript {Path(self._archive['file']).stem}" if self._archive else "TorchScript"

    def load_weights_file(self, path: Path) -> None:
        """Read ``path`` (TorchScript, or ``torch.export`` for ``.pt2``) and measure its output width."""
        data = Path(path).read_bytes()
        kind = "export" if Path(path).suffix == EXPORT_SUFFIX else "torchscript"
        self._install({"format": kind, "archive": data, "file": Path(path).name,
                       "sha256": hashlib.sha256(data).hexdigest()}, where=str(path))

    def _install(self, archive: dict[str, Any], where: str) -> None:
        buffer = io.BytesIO(archive["archive"])
        try:
            with warnings.catch_warnings():  # torch's deprecation notice of TorchScript: the user chose the format
                warnings.simplefilter("ignore", FutureWarning)
                if archive["format"] == "export":
                    module: torch.nn.Module = _Exported(torch.export.load(buffer).module())
                else:
                    module = torch.jit.load(buffer, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure means the file is not such a module
            what = "torch.export program" if archive["format"] == "export" else "TorchScript archive"
            first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
            raise UserError(f"{where}: not a readable {what} ({type(exc).__name__}: {first})") from None
        self.module = module
        if "embed_dim" not in archive:
            archive = {**archive, "embed_dim": self._measure(module, where)}
        self._archive = archive

    @torch.no_grad()
    def _measure(self, module: torch.nn.Module, where: str) -> int:
        """The width of the module's output for two blank images (``[2, D]`` expected)."""
        size = self.preprocess.input_size
        x = torch.zeros(2, 3, size, size)
        try:
            z = module(x)
        except Exception as exc:  # noqa: BLE001 - the module's own error, named in one line
            first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
            raise UserError(f"{where}: the module fails on a float batch of shape {tuple(x.shape)} "
                            f"({type(exc).__name__}: {first}); set input_size to what it takes") from None
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != 2:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise UserError(f"{where}: the module returns {shape} for a batch of shape {tuple(x.shape)}; expected "
                            "(2, D): one embedding row per image")
        return int(z.shape[1])

    def get_extra_state(self) -> dict[str, Any]:
        """The module's file (bytes, name, sha256, format) and its output width."""
        if self._archive is None:
            raise UserError(f"method {self.name!r}: no module loaded (give --weights FILE)")
        return self._archive

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Rebuild the module from the bytes saved in a checkpoint."""
        self._install(state, where=f"the {state.get('file', 'module')} inside a torchscript checkpoint")
