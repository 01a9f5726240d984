"""The options and value parsers that several ``ssfbench`` commands share.

Everything here is light (click, pathlib and :mod:`ssfbench.errors` at import time) so that
``ssfbench --help`` stays fast; a parser that needs more imports it when called. Every parser turns
a malformed value into a :class:`~ssfbench.errors.UserError` naming the option and what it expects.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from ssfbench.errors import UserError

F = TypeVar("F", bound=Callable[..., object])

#: options whose values may follow one flag space-separated; expanded to repeated flags before click
LIST_OPTIONS = ("--curves", "--datasets", "--k", "--methods", "--seeds")


def expand_list_options(argv: list[str]) -> list[str]:
    """``--datasets a b`` -> ``--datasets a --datasets b`` for the options in ``LIST_OPTIONS``;
    every other argument passes through unchanged and in order."""
    out: list[str] = []
    current = None
    for arg in argv:
        if arg.startswith("-") and not (current is not None and _is_number(arg)):  # --k -1: a (bad) value
            current = arg if arg in LIST_OPTIONS else None
            if current is None:
                out.append(arg)
            continue
        if current is not None:
            out.extend([current, arg])
        else:
            out.append(arg)
    return out


def _is_number(arg: str) -> bool:
    """Whether ``arg`` is a number (``-1``, ``-0.5``): after a list option it is a value, not a flag."""
    try:
        float(arg)
    except ValueError:
        return False
    return True


def parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--set``: ``("lr=0.01", "n=4")`` -> ``{"lr": "0.01", "n": "4"}`` (dashes in keys become
    underscores; values stay strings)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_data_options(pairs: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``--data-option``: ``("synth-vox.identities=1000",)`` -> ``{"synth-vox": {"identities": 1000}}``
    (values parsed as JSON where they are JSON, else kept as strings)."""
    out: dict[str, dict[str, object]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        dataset, dot, key = target.rpartition(".")
        if not sep or not dot or not dataset or not key:
            raise UserError(f"--data-option expects DATASET.KEY=VALUE, got {pair!r}")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(dataset, {})[key.replace("-", "_")] = value
    return out


def check_device(value: str) -> str:
    """``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether the GPU exists is checked when
    the run starts); anything else is a usage error naming the option."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise click.BadParameter(f"expected auto, cpu, cuda or cuda:N, got {value!r}", param_hint="'--device'")
    return value


def parse_roots(pairs: tuple[str, ...]) -> dict[str, Path]:
    """``--root``: ``("bp4d=/data/BP4D",)`` -> ``{"bp4d": Path("/data/BP4D")}``."""
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise UserError(f"--root expects NAME=PATH, got {pair!r}")
        out[name] = Path(path)
    return out


def invocation() -> tuple[str, ...]:
    """The command line of this invocation: what :func:`ssfbench.cli.main` was given (it leaves it in
    the root context's ``obj["argv"]``), else ``ssfbench`` and ``sys.argv[1:]``."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict) and "argv" in obj:
        return tuple(obj["argv"])
    return ("ssfbench", *sys.argv[1:])


def _offline_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--offline``: the command runs with downloads off (:func:`ssfbench.nn.weights.offline_mode`)."""
    if value:
        from ssfbench.nn.weights import offline_mode

        ctx.with_resource(offline_mode())


#: the options of ``run``, ``pretrain``, ``embed`` and ``probe`` (the stages of one run share its identity)
RUN_OPTIONS = [
    click.option("--method", "method_name", required=True, help="Registered method (see `ssfbench list methods`)."),
    click.option("--recipe", default=None, metavar="NAME", help="Apply a shipped recipe's options and settings (see `ssfbench list recipes`; `paper`: the released training code). Options given explicitly win; results record both."),
    click.option("--k", "ks", type=int, multiple=True, help="Ranking interval k (ranking, triplet, npair); several values (--k 1 2 4) train or reuse one encoder each, then add their ensemble row."),
    click.option("--steps", type=click.IntRange(min=0), default=None, help="Pretraining steps (default 300: the synthetic default budget)."),
    click.option("--epochs", type=click.IntRange(min=1), default=None, help="Pretraining epochs instead of --steps."),
    click.option("--image-size", type=click.IntRange(min=16), default=64, show_default=True, help="Input size of the encoder (and of the synthetic renderer)."),
    click.option("--backbone", default="resnet18", show_default=True, help="Any timm model name."),
    click.option("--pretrained", default=None, metavar="imagenet|default|PATH", help="Backbone weights: 'imagenet' = torchvision's ImageNet weights as the paper's authors loaded them (resnet18-f37072fd.pth; densenet121, mobilenetv2_100, any backbone with a timm *.tv_in1k tag); 'default' = timm's default pretrained tag of --backbone (e.g. vit_small_patch14_dinov2.lvd142m, hf-hub:ORG/REPO); PATH = a local state dict (torchvision or timm layout, .pth or .safetensors). Downloaded into the torch hub / Hugging Face cache when online; their data config (input size, mean/std, crop) becomes the default preprocessing. See docs/pretrained-weights.md."),
    click.option("--offline", is_flag=True, expose_value=False, callback=_offline_callback, help="Never download weights: use the torch hub / Hugging Face caches only (as HF_HUB_OFFLINE=1 does); a missing file is an error saying how to fetch it."),
    click.option("--weights", type=click.Path(path_type=Path), default=None, help="Load this checkpoint instead of pretraining."),
    click.option("--bn-stats", type=click.Choice(["checkpoint", "data"]), default="checkpoint", show_default=True, help="BatchNorm statistics of the trained (or --weights) encoder: what training left (the file's own), or re-estimated on 2,048 seeded frames of --pretrain-data's training split for the seed, as the random floor and every step-0 control get theirs. A control, variant bn=data: is a trained encoder's gain over its own initialisation its weights or its statistics? It reuses (or trains) the run without it."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of initialisation, sampling and probe."),
    click.option("--seeds", type=click.IntRange(min=0), multiple=True, help="Several seeds (space-separated); overrides --seed."),
    click.option("--datasets", multiple=True, help="Evaluation datasets (default: synth-au synth-expr)."),
    click.option("--root", "roots", multiple=True, help="NAME=PATH of a dataset's local copy (repeatable)."),
    click.option("--pretrain-data", default="synth-vox", show_default=True, help="Video dataset to pretrain on."),
    click.option("--data-option", "data_options", multiple=True, metavar="DATASET.KEY=VALUE",
                  help="Option for a dataset's open(), e.g. synth-vox.identities=1000 (repeatable)."),
    click.option("--trust-weights", is_flag=True, help="Let --weights, --pretrained PATH and a run's last.pt create the pickled Python objects they hold (which can run any code): only for files from a source you trust. Without it such a file is refused; `ssfbench weights convert` makes a .safetensors copy that needs no trust. See docs/security.md."),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate (method default otherwise)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Windows per step (method default otherwise)."),
    click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any other method setting, e.g. --set optimizer=adam."),
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True, help="Pretraining arithmetic: auto (bf16 autocast on CUDA, fp32 on CPU), fp32 (no autocast, as the released code) or bf16. Recorded with the checkpoint."),
    click.option("--out", type=click.Path(path_type=Path), default=Path("ssfbench-out"), show_default=True, help="Output folder."),
    click.option("--device", default="auto", show_default=True, callback=lambda ctx, param, value: check_device(value), help="auto, cpu or cuda[:N]."),
    click.option("--workers", default="auto", show_default=True, help="DataLoader worker processes, or auto (CUDA: the cores a GPU needs at the measured rate of reading VoxCeleb2 from mp4, at most its share of the cores less one; CPU: 0 on machines with at most 4 cores, else 2)."),
    click.option("--overwrite", type=click.Choice(["only-missing", "always", "never"]), default="only-missing", show_default=True, help="Embedding caches: reuse a matching one (recomputing a mismatched one with a warning), always recompute, or refuse a mismatch."),
    click.option("--resume/--fresh", default=True, show_default=True, help="--resume: continue an interrupted run from the last.pt in its run folder, and an interrupted embedding from its partial cache (the default: rerunning the same command resumes). --fresh: discard this run's checkpoints and pretrain from scratch."),
    click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True, help="Also write the resume state (last.pt) every N pretraining steps; 0: at epoch ends and every 10 minutes. Never changes the numbers."),
    click.option("--embed-batch-size", type=click.IntRange(min=1), default=256, hidden=True, help="Rows per embedding batch and resumable cache block."),
    click.option("--init-control/--no-init-control", default=True, show_default=True, help="run: also score a pretrained method at its own initialisation (the same run at --steps 0, BatchNorm statistics re-estimated like the random floor's; with --pretrained, the frozen row of those weights, e.g. 'ResNet-18 ImageNet (torchvision)'), the paired control `compare` measures its gain against."),
    click.option("--quiet", is_flag=True, help="No progress bars."),
    click.option("--log", type=click.Choice(["tensorboard"]), default=None, help="Also log the pretraining curve (loss, validation metric, learning rate, frames/s) as TensorBoard events under runs/<run_id>/tb/ (needs pip install 'ssfbench[tensorboard]'); runs/<run_id>/curve.csv is always written."),
    click.option("--check-sync-every", type=click.IntRange(min=0), default=0, hidden=True, help="Under torchrun: also compare the ranks' parameters every N pretraining steps (always at epoch ends)."),
]


def _under_trust(command: F) -> F:
    """``command`` taking ``trust_weights`` (``--trust-weights``) and running under
    :func:`ssfbench.runtime.safeload.trusting` of it, so every weight file the command reads is trusted or not."""
    import functools

    @functools.wraps(command)
    def wrapped(*args: object, trust_weights: bool = False, **kwargs: object) -> object:
        from ssfbench.runtime.safeload import trusting

        with trusting(trust_weights):
            return command(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def trust_weights_option(files: str) -> Callable[[F], F]:
    """A command's ``--trust-weights`` flag: the command runs under
    :func:`ssfbench.runtime.safeload.trusting` of it, so the weight files it reads (``files``, as the
    help names them) may create the pickled Python objects they hold. For the commands outside
    :data:`RUN_OPTIONS` (``retrieve``, ``mock-run``); ``run`` and its stages take it from there."""

    def decorate(command: F) -> F:
        option = click.option(
            "--trust-weights", is_flag=True,
            help=f"Let {files} create the pickled Python objects they hold (which can run any code): only for "
                 "files from a source you trust. Without it such a file is refused; `ssfbench weights convert` "
                 "makes a .safetensors copy that needs no trust. See docs/security.md.")
        return option(_under_trust(command))

    return decorate


def run_options(command: F) -> F:
    """Decorate ``command`` with every option of :data:`RUN_OPTIONS`, in the order listed
    (``--trust-weights`` is consumed here: the command runs under :func:`ssfbench.runtime.safeload.trusting`)."""
    command = _under_trust(command)
    for option in reversed(RUN_OPTIONS):
        command = option(command)
    return command


#: ``run`` and ``probe``: whether several ``--k`` also give their concatenation's row
ENSEMBLE_OPTION = click.option(
    "--ensemble/--no-ensemble", default=True, show_default=True,
    help="With several --k: also evaluate the concatenation of their embeddings as one row ('Ranking Ensemble', variant k=1+2+4).")
