"""Pretrained backbone weights: what ``--pretrained imagenet|default|PATH`` means, where the files come
from, and the identity every checkpoint, cache and result records (this module is its one owner).

- ``imagenet``: torchvision's ImageNet weights, as the ranking paper's authors loaded them
  (``models.resnet18(pretrained=True)`` = ``resnet18-f37072fd.pth``; densenet121 and MobileNetV2
  likewise): the file at torchvision's own URL, through timm's ``<arch>.tv_in1k`` tag (timm's
  MobileNetV2 has no such tag: torchvision's file is mapped onto ``mobilenetv2_100`` tensor by tensor).
  Downloaded into the torch hub cache (``$TORCH_HOME/hub/checkpoints``) with a progress bar and
  checked against the hash in its name.
- ``default``: timm's default pretrained tag for ``--backbone`` (``resnet18`` -> ``resnet18.a1_in1k``;
  ``vit_small_patch14_dinov2.lvd142m`` as named; ``hf-hub:owner/repo``), from the Hugging Face cache
  (``$HF_HOME/hub``) or torch hub cache as timm would load it.
- a path: a local state dict (torchvision or timm layout; ``.safetensors`` or a ``torch.save`` file
  read with ``weights_only=True``).

Offline (``HF_HUB_OFFLINE=1``, ``--offline``, or :func:`offline_mode`) nothing is downloaded: a file
missing from the cache is one :class:`~ssfbench.errors.UserError` naming the tag, the cache path and
the command that pre-fetches it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from ssfbench.errors import UserError

IMAGENET = "imagenet"
DEFAULT = "default"

#: torchvision's evaluation transform for these weights (resize 256, centre crop 224, ImageNet statistics)
TORCHVISION_DATA_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bilinear", "crop_pct": 0.875,
                           "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

_offline_override: bool | None = None


def is_offline() -> bool:
    """Whether downloads are off: :func:`offline_mode` (``--offline``) or ``HF_HUB_OFFLINE`` set."""
    if _offline_override is not None:
        return _offline_override
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def offline_mode(offline: bool = True) -> Iterator[None]:
    """Within the block, use the local caches only (``offline=True``) whatever the environment says."""
    global _offline_override
    saved = _offline_override
    _offline_override = offline
    try:
        yield
    finally:
        _offline_override = saved


def torch_hub_checkpoints() -> Path:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """Where the Hugging Face hub keeps downloads, read from the environment now (``HF_HUB_CACHE``,
    else ``$HF_HOME/hub``, else huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    import huggingface_hub.constants

    return Path(huggingface_hub.constants.HF_HUB_CACHE)


@dataclass
class PretrainedTrunk:
    """A loaded trunk with its weights' identity and data config."""

    trunk: nn.Module
    #: recorded in checkpoints, caches and results (:func:`identity` keys: pretrained, tag, source, ...)
    identity: dict[str, Any]
    #: timm-style data config (``input_size``, ``mean``, ``std``, ``crop_pct``, ``interpolation``) of
    #: the weights, or None when they carry none (a bare local file)
    data_config: dict[str, Any] | None = field(default=None)


def arch_of(backbone: str) -> str:
    """The architecture of a timm name (``resnet18.tv_in1k`` -> ``resnet18``)."""
    return backbone.split(".", 1)[0]


#: timm architectures whose torchvision ImageNet file ``--pretrained imagenet`` loads (torchvision
#: name when it differs); the families whose layouts :func:`torchvision_to_timm` maps, checked by tests
IMAGENET_FAMILIES = r"resnet\d+|resnext\d+_\d+x\d+d|wide_resnet\d+_2|densenet\d+|mobilenetv2_100"
TORCHVISION_NAMES = {"mobilenetv2_100": "mobilenet_v2"}


def imagenet_tag(backbone: str) -> str:
    """The timm tag that ``--pretrained imagenet`` loads for ``backbone`` (torchvision's weights), or
    a :class:`UserError` saying which backbones have them."""
    arch = arch_of(backbone)
    if "." in backbone and backbone != f"{arch}.tv_in1k":
        raise UserError(f"--pretrained imagenet: --backbone {backbone!r} names its own weights; use "
                        f"--pretrained default for them, or --backbone {arch} for torchvision's ImageNet weights")
    if arch == "mobilenetv2_100":
        return "mobilenetv2_100 (torchvision mobilenet_v2)"
    tag = f"{arch}.tv_in1k"
    if not re.fullmatch(IMAGENET_FAMILIES, arch) or tag not in timm.list_pretrained(tag):
        have = ", ".join(sorted({arch_of(t) for t in timm.list_pretrained("*.tv_in1k")
                                 if re.fullmatch(IMAGENET_FAMILIES, arch_of(t))} | {"mobilenetv2_100"}))
        raise UserError(f"--pretrained imagenet: no torchvision ImageNet weights for --backbone {arch!r} "
                        f"(there are for {have}); use --pretrained default for timm's weights of {arch!r}")
    return tag


def torchvision_url(arch: str) -> str:
    """The URL of torchvision's ImageNet file for timm's ``arch``: the weights ``pretrained=True`` gave
    (``IMAGENET1K_V1``: resnet18 -> ``resnet18-f37072fd.pth``)."""
    import torchvision

    return torchvision.models.get_model_weights(TORCHVISION_NAMES.get(arch, arch))["IMAGENET1K_V1"].url


def prefetch_hint(tag: str) -> str:
    """The one-liner that puts ``tag``'s weights in the cache on a machine that is online."""
    return (f"python -c \"import timm; timm.create_model('{tag}', pretrained=True)\"" if not tag.startswith("hf-hub:")
            else f"huggingface-cli download {tag.removeprefix('hf-hub:')}")


def _missing(tag: str, where: Path, hint: str) -> UserError:
    return UserError(f"--pretrained: weights {tag!r} are not in the local cache ({where}) and downloads are off "
                     f"(HF_HUB_OFFLINE / --offline); fetch them once where the network is reachable: {hint}")


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from ssfbench.runtime.fileio import sha256_file

    return sha256_file(Path(path))


def file_sha256(path: Path) -> str:
    """sha256 of a weights file (memoised per path, size and modification time)."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def torchvision_file(url: str, tag: str) -> Path:
    """torchvision's weights file at ``url`` in the torch hub cache, downloaded (progress bar, hash in the
    file name checked) unless it is there or downloads are off (then a one-line :class:`UserError`)."""
    name = os.path.basename(urlparse(url).path)
    path = torch_hub_checkpoints() / name
    if path.is_file():
        return path
    if is_offline():
        raise _missing(tag, path.parent, f"python -c \"import torch; torch.hub.load_state_dict_from_url('{url}')\"")
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = re.search(r"-([a-f0-9]+)\.", name)
    try:
        torch.hub.download_url_to_file(url, str(path), prefix.group(1) if prefix else None, progress=True)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"--pretrained: could not download {url} for {tag!r} ({type(exc).__name__}: {exc}); "
                        f"put the file at {path} or pass --pretrained PATH") from None
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: ``.safetensors``, or a ``torch.save`` file read without running
    its code (:func:`ssfbench.runtime.safeload.read_torch_file`; a ``state_dict``/``model`` entry is unwrapped,
    a ``module.`` prefix stripped)."""
    if not path.is_file():
        raise UserError(f"--pretrained {path}: weights file not found (expected imagenet, default or a state-dict file)")
    from ssfbench.runtime.safeload import read_torch_file

    # never runs the file's code: a pickle that needs more than plain data is refused (--trust-weights)
    state: Any = read_torch_file(path, "--pretrained weights file")
    if isinstance(state, nn.Module):  # a pickled model object, read under --trust-weights
        state = state.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--pretrained {path}: expected a state dict (parameter name -> tensor)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def torchvision_to_timm(arch: str, state: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
    """torchvision's layout of ``arch`` in timm's (ResNets already match): DenseNet's ``norm.1`` keys
    renamed as timm does, MobileNetV2 mapped tensor by tensor (both list the same layers in order)."""
    if arch.startswith("densenet"):
        from timm.models.densenet import _filter_torchvision_pretrained

        return _filter_torchvision_pretrained(dict(state))
    if arch == "mobilenetv2_100" and any(k.startswith("features.") for k in state):
        ours = list(trunk.state_dict().items())
        theirs = [(k, v) for k, v in state.items() if not k.startswith("classifier.")]
        if len(ours) == len(theirs) and all(v.shape == t.shape for (_, v), (_, t) in zip(ours, theirs)):
            return {k: t for (k, _), (_, t) in zip(ours, theirs)}
    return state


def load_into(trunk: nn.Module, state: dict[str, torch.Tensor], what: str, backbone: str) -> None:
    """Load ``state`` into ``trunk`` (classifier keys ignored); a tensor the trunk needs that is
    missing or of another shape is one :class:`UserError` naming ``what``."""
    own = trunk.state_dict()
    state = torchvision_to_timm(arch_of(backbone), state, trunk)
    # BatchNorm step counters are absent from files saved before torch had them (torchvision's DenseNets)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        keys = ", ".join((missing + wrong)[:4])
        raise UserError(f"{what}: not a {backbone} state dict ({len(missing)} tensors missing, {len(wrong)} of "
                        f"another shape: {keys} ...)")
    trunk.load_state_dict({k: state.get(k, own[k]) for k in own})


def _create(name: str, **kwargs: Any) -> nn.Module:
    return timm.create_model(name, num_classes=0, **kwargs)


def _imagenet(backbone: str) -> PretrainedTrunk:
    tag = imagenet_tag(backbone)
    arch = arch_of(backbone)
    mobilenet = arch == "mobilenetv2_100"
    url = torchvision_url(arch)
    path = torchvision_file(url, tag)
    trunk = _create(arch if mobilenet else tag)  # the tag's pretrained_cfg (data config) comes with it
    load_into(trunk, read_state_dict(path), str(path), arch)
    config = dict(TORCHVISION_DATA_CONFIG) if mobilenet else None
    identity = {"pretrained": IMAGENET, "tag": tag, "source": "torchvision", "url": url, "file": path.name,
                "sha256": file_sha256(path)}
    return PretrainedTrunk(trunk, identity, config or data_config(trunk))


def _hf_files(repo: str, filenames: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo, name, cache_dir=str(hf_hub_cache()))
        if isinstance(found, str):
            return Path(found)
    return None


def _default(backbone: str) -> PretrainedTrunk:
    from timm.models._builder import _resolve_pretrained_source

    cache = hf_hub_cache()
    weight_files: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    if backbone.startswith("hf-hub:"):
        repo = backbone.removeprefix("hf-hub:").split("@", 1)[0]
        source, location, files = "hf-hub", repo, weight_files  # type: tuple[str, str, tuple[str, ...]]
        if is_offline() and (_hf_files(repo, ("config.json",)) is None or _hf_files(repo, files) is None):
            raise _missing(backbone, cache, prefetch_hint(backbone))
    else:
        cfg = timm.models.get_pretrained_cfg(backbone)
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
            raise UserError(f"--pretrained default: timm has no pretrained weights for --backbone {backbone!r} "
                            f"(`python -c \"import timm; print(timm.list_pretrained('{arch_of(backbone)}*'))\"` lists its tags)")
        source, location = _resolve_pretrained_source(cfg.to_dict())
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else weight_files
        if isinstance(location, tuple):
            location = location[0]
        tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else backbone
        if is_offline():
            present = (_hf_files(location, files) if source == "hf-hub"
                       else (torch_hub_checkpoints() / os.path.basename(urlparse(location).path)))
            if present is None or not Path(present).is_file():
                where = cache if source == "hf-hub" else torch_hub_checkpoints()
                hint = f"huggingface-cli download {location}" if source == "hf-hub" else prefetch_hint(tag)
                raise _missing(tag, where, hint)
    tag = backbone if backbone.startswith("hf-hub:") else tag
    saved = None
    try:
        if is_offline():
            import huggingface_hub.constants as hf_constants

            saved, hf_constants.HF_HUB_OFFLINE = hf_constants.HF_HUB_OFFLINE, True
        trunk = _create(backbone, pretrained=True, cache_dir=str(cache) if source == "hf-hub" else None)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed download or unreadable file: one line, never a traceback
        if is_offline():
            raise _missing(tag, cache, prefetch_hint(tag)) from None
        raise UserError(f"--pretrained default: could not load {tag!r} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); pre-fetch it with {prefetch_hint(tag)}") from None
    finally:
        if saved is not None:
            import huggingface_hub.constants as hf_constants

            hf_constants.HF_HUB_OFFLINE = saved
    identity: dict[str, Any] = {"pretrained": DEFAULT, "tag": tag, "source": source}
    if source == "hf-hub":
        path = _hf_files(location, files)
        identity["repo"] = location
        if path is not None:
            identity.update(file=path.name, revision=path.parent.name, sha256=file_sha256(path))
    elif source == "url":
        path = torch_hub_checkpoints() / os.path.basename(urlparse(location).path)
        identity["url"] = location
        if path.is_file():
            identity.update(file=path.name, sha256=file_sha256(path))
    return PretrainedTrunk(trunk, identity, data_config(trunk))


def _local(backbone: str, spec: str) -> PretrainedTrunk:
    path = Path(spec)
    state = read_state_dict(path)
    trunk = _create(backbone)
    load_into(trunk, state, f"--pretrained {path}", backbone)
    identity = {"pretrained": "file", "tag": backbone, "source": "file", "file": path.name,
                "sha256": file_sha256(path)}
    # a bare file carries no data config; a tagged backbone (resnet18.tv_in1k) names its weights' one
    return PretrainedTrunk(trunk, identity, data_config(trunk) if "." in backbone else None)


def load_pretrained_trunk(backbone: str, pretrained: str) -> PretrainedTrunk:
    """The timm trunk of ``backbone`` (classifier removed) with the weights ``pretrained`` names
    (``imagenet``, ``default`` or a path: see the module docstring), their identity and data config."""
    if pretrained == IMAGENET:
        return _imagenet(backbone)
    if pretrained == DEFAULT:
        return _default(backbone)
    return _local(backbone, pretrained)


def data_config(trunk: nn.Module) -> dict[str, Any]:
    """timm's data config of the trunk's pretrained weights (``resolve_data_config``)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=trunk)
    return {k: cfg[k] for k in ("input_size", "interpolation", "crop_pct", "mean", "std") if k in cfg}


#: words for the weights in row names, by ``identity["source"]``
_SOURCE_WORDS = {"torchvision": "ImageNet (torchvision)"}


def pretty_backbone(backbone: str) -> str:
    """A human name of a timm backbone: ``resnet18`` -> ``ResNet-18``, others as named (tag dropped)."""
    arch = arch_of(backbone.removeprefix("hf-hub:"))
    m = re.fullmatch(r"(resnet|densenet)(\d+)", arch)
    if m:
        return {"resnet": "ResNet", "densenet": "DenseNet"}[m.group(1)] + f"-{m.group(2)}"
    return {"mobilenetv2_100": "MobileNetV2"}.get(arch, arch)


def weights_label(backbone: str, pretrained: str | None) -> str:
    """How a row names its weights: ``ImageNet (torchvision)``, the timm tag, or the file's name."""
    if pretrained == IMAGENET:
        return _SOURCE_WORDS["torchvision"]
    if pretrained == DEFAULT:
        if backbone.startswith("hf-hub:"):
            return backbone.removeprefix("hf-hub:")
        cfg = timm.models.get_pretrained_cfg(backbone)
        return cfg.tag if cfg is not None and cfg.tag else "pretrained"
    if pretrained:
        return Path(pretrained).name
    return "random init"


def check_input_size(trunk: nn.Module, backbone: str, size: int, option: str = "--image-size") -> None:
    """One-line :class:`UserError` when ``trunk`` only takes a fixed input size (a ViT's patch grid)
    and ``size`` is another one."""
    cfg = getattr(trunk, "pretrained_cfg", None) or {}
    patch = getattr(trunk, "patch_embed", None)
    fixed = getattr(patch, "img_size", None) if patch is not None and not getattr(patch, "dynamic_img_size", False) \
        and getattr(patch, "strict_img_size", True) else None
    if fixed is None and cfg.get("fixed_input_size"):
        fixed = tuple(cfg.get("input_size", (3, 0, 0))[-2:])
    if fixed and tuple(fixed) != (size, size):
        want = f"{fixed[0]}" if fixed[0] == fixed[-1] else f"{fixed[0]} x {fixed[1]}"
        sep = "=" if option.startswith("--set") else " "
        raise UserError(f"{option}{sep}{size}: backbone {backbone!r} takes only {want} px input (a fixed patch "
                        f"grid); use {option}{sep}{fixed[0]}, or a backbone without a fixed input size")


__all__ = ["IMAGENET", "DEFAULT", "PretrainedTrunk", "load_pretrained_trunk", "is_offline", "offline_mode",
           "hf_hub_cache", "torch_hub_checkpoints", "read_state_dict", "weights_label",
           "pretty_backbone", "check_input_size", "imagenet_tag", "file_sha256"]
