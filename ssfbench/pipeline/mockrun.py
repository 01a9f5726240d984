"""``ssfbench mock-run``: a one-minute contract check of a method for plugin authors.

It runs the method through the harness's own code paths (registry, pretraining loop or per-fold
label training, embedding, checkpoints, probe) on tiny synthetic data (``synth-vox`` and
``synth-au`` at 32x32, a few steps) and reports each check on its own line as PASS, FAIL or SKIP
(not applicable), with what failed and why. Nothing here depends on click: ``mock_run`` returns a
:class:`MockRunReport`; the command (:mod:`ssfbench.cli.mockrun`) prints it and exits 0 when nothing
failed, 2 otherwise.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ssfbench.errors import UserError

if TYPE_CHECKING:
    import torch

#: sizes of the tiny synthetic data (``frames`` of the videos grows to fit the method's window)
TINY_VOX: dict[str, int] = {"identities": 5, "videos_per_identity": 1, "frames": 60}
TINY_AU: dict[str, int] = {"subjects": 3, "videos_per_subject": 1, "frames": 40, "stride": 5}
BATCH = 4

Status = Literal["PASS", "FAIL", "SKIP", "WARN"]


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str = ""


@dataclass
class MockRunReport:
    """Every check of one mock run; ``ok`` when none failed."""

    method: str
    header: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped and warned checks do not count)."""
        return all(c.status != "FAIL" for c in self.checks)

    @property
    def warnings(self) -> list[Check]:
        """The checks that passed with a warning."""
        return [c for c in self.checks if c.status == "WARN"]

    @property
    def failed(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == "FAIL"]

    def lines(self) -> list[str]:
        """The report as printed: a header, one line per check, a verdict."""
        width = max((len(c.name) for c in self.checks), default=0)
        out = [self.header] if self.header else []
        out += [f"{c.status}  {c.name.ljust(width)}  {c.detail}".rstrip() for c in self.checks]
        if self.ok:
            out.append(f"result: all {len(self.checks)} checks passed for method {self.method!r}")
        else:
            names = ", ".join(c.name for c in self.failed)
            out.append(f"result: {len(self.failed)} of {len(self.checks)} checks FAILED for method "
                       f"{self.method!r}: {names}")
        return out


class _Skip(Exception):
    """Raised inside a check that does not apply to this method."""


class _Warn(Exception):
    """Raised inside a check that passes with a warning (the method works but its output is suspect)."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _state(method: torch.nn.Module) -> dict[str, torch.Tensor]:
    import torch

    return {k: v.detach().clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    import torch

    return [k for k in before if k not in after or not torch.equal(before[k], after[k])]


def mock_run(method_name: str, *, backbone: str = "resnet18", image_size: int = 32, steps: int = 2,
             seed: int = 0, workdir: Path | None = None, settings: dict[str, Any] | None = None) -> MockRunReport:
    """Check the contract of registered method ``method_name`` (its defaults, with ``settings``
    applied as ``--set`` would) on tiny synthetic data; never raises for a broken method (every
    problem becomes a FAIL line)."""
    import torch

    if image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {image_size}")
    if steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="ssfbench-mockrun-") as tmp:
            return mock_run(method_name, backbone=backbone, image_size=image_size, steps=steps, seed=seed,
                            workdir=Path(tmp), settings=settings)
    report = MockRunReport(method_name)
    ctx: dict[str, Any] = {}

    def check(name: str, fn: Callable[[], str], *, needs: tuple[str, ...] = ()) -> None:
        missing = [n for n in needs if n not in ctx]
        if missing:
            report.checks.append(Check(name, "SKIP", f"needs {', '.join(missing)} (failed above)"))
            return
        started = time.time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detail = fn()
        except _Skip as exc:
            report.checks.append(Check(name, "SKIP", str(exc)))
            return
        except _Warn as exc:
            report.checks.append(Check(name, "WARN", str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a broken method is reported, never raised
            report.checks.append(Check(name, "FAIL", _one_line(exc)))
            return
        report.checks.append(Check(name, "PASS", f"{detail} ({time.time() - started:.1f} s)"))

    torch.manual_seed(seed)
    check("registered", lambda: _registered(method_name, ctx))
    check("instantiate with " + (", ".join(f"{k}={v}" for k, v in settings.items()) if settings else "defaults"),
          lambda: _instantiate(ctx, backbone, image_size, settings or {}), needs=("cls",))
    check("tiny data", lambda: _data(ctx, image_size), needs=("method",))
    check("embed shape and dtype", lambda: _shape(ctx), needs=("method", "x"))
    check("embedding finite", lambda: _finite(ctx), needs=("z",))
    check("embedding varies across images", lambda: _varies(ctx, method_name), needs=("z",))
    check("deterministic in eval mode", lambda: _deterministic(ctx), needs=("z",))
    check("independent of the batch", lambda: _batch_independent(ctx), needs=("z",))
    check("weights and BatchNorm stats unchanged by embedding", lambda: _frozen(ctx), needs=("z",))
    check(f"training ({steps} steps, loss finite)", lambda: _train(ctx, steps, seed, workdir), needs=("method", "au"))
    check("checkpoint save/load round trip", lambda: _round_trip(ctx, workdir), needs=("z",))
    check("probe on its embeddings", lambda: _probe(ctx, seed), needs=("z",))
    report.header = (f"mock-run: method {method_name!r}{ctx.get('origin', '')}, backbone {backbone}, image "
                     f"{image_size}, {steps} steps, tiny synth-vox ({TINY_VOX['identities']} videos) and synth-au "
                     f"({TINY_AU['subjects']} subjects), cpu")
    return report


# ---- the checks (each returns its PASS detail or raises) ------------------------------------------

def _registered(name: str, ctx: dict[str, Any]) -> str:
    from ssfbench.api.registry import METHODS

    cls = METHODS.get(name)
    origin = next((o for n, _, o in METHODS.describe() if n == name), "?")  # the one in use comes first
    ctx["cls"], ctx["origin"] = cls, f" (from {origin})"
    return f"{cls.__module__}.{cls.__qualname__} from {origin}"


def _instantiate(ctx: dict[str, Any], backbone: str, image_size: int, settings: dict[str, Any]) -> str:
    from ssfbench.api.preprocess import Preprocess
    from ssfbench.api.registry import get_dataset
    from ssfbench.train.finetune import with_num_labels

    cls = ctx["cls"]
    config = cls.Config()
    if cls.needs_labels:
        config = with_num_labels(cls.name, config, len(get_dataset("synth-au").label_names))
    config = config.replace(**{**settings, "batch_size": BATCH})
    method = cls(config, backbone=backbone, image_size=image_size)
    if not isinstance(method.embed_dim, int) or method.embed_dim < 1:
        raise TypeError(f"embed_dim must be a positive int, got {method.embed_dim!r}")
    if not isinstance(method.preprocess, Preprocess):
        raise TypeError(f"preprocess must be a ssfbench.api.preprocess.Preprocess, got {type(method.preprocess).__name__}")
    ctx["method"] = method
    n = sum(p.numel() for p in method.parameters())
    kind = "labels per fold" if cls.needs_labels else ("trainable" if cls.trainable else "not trainable")
    return f"{n / 1e6:.2f}M parameters, embed_dim {method.embed_dim}, input {method.preprocess.input_size}, {kind}"


def _data(ctx: dict[str, Any], image_size: int) -> str:
    import torch

    from ssfbench.api.preprocess import stack_resized
    from ssfbench.api.registry import get_dataset

    au = get_dataset("synth-au").open(image_size=image_size, **TINY_AU)
    method = ctx["method"]
    images = torch.from_numpy(stack_resized(au.read_images(list(range(BATCH))), method.preprocess.input_size))
    ctx["au"], ctx["x"] = au, method.preprocess(images)
    return f"synth-au {len(au)} rows, batch {tuple(ctx['x'].shape)}"


def _shape(ctx: dict[str, Any]) -> str:
    import torch
    method, x = ctx["method"], ctx["x"]
    method.eval()
    with torch.no_grad():
        z = method.embed(x)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"embed returned {type(z).__name__}, expected a torch.Tensor")
    if tuple(z.shape) != (len(x), method.embed_dim):
        raise ValueError(f"embed returned shape {list(z.shape)}, expected [{len(x)}, embed_dim={method.embed_dim}]")
    if z.dtype != torch.float32:
        raise TypeError(f"embed returned dtype {z.dtype}, expected torch.float32")
    ctx["z"] = z
    return f"[{len(x)}, {method.embed_dim}] float32"


def _finite(ctx: dict[str, Any]) -> str:
    import torch
    bad = int((~torch.isfinite(ctx["z"])).sum())
    if bad:
        raise ValueError(f"{bad} of {ctx['z'].numel()} embedding values are NaN or infinite")
    return f"norms {ctx['z'].norm(dim=1).min():.3g}..{ctx['z'].norm(dim=1).max():.3g}"


def _varies(ctx: dict[str, Any], method_name: str) -> str:
    from ssfbench.evaluation.embed import constant_embeddings

    z = ctx["z"].detach().cpu().numpy()
    if constant_embeddings(z):
        raise _Warn(f"method {method_name!r}: every image of synth-au gets the same embedding (zero variance over "
                    f"{len(z)} images); the probe can then only guess a constant")
    return f"{len(z)} images, {len({r.tobytes() for r in z})} distinct embeddings"


def _deterministic(ctx: dict[str, Any]) -> str:
    import torch
    method = ctx["method"].eval()
    with torch.no_grad():
        again = method.embed(ctx["x"])
    if not torch.equal(again, ctx["z"]):
        raise ValueError(f"two eval-mode calls on the same input differ (max {float((again - ctx['z']).abs().max()):.3g}); "
                         "dropout or sampling left on in eval mode?")
    return "same input twice -> identical"


def _batch_independent(ctx: dict[str, Any]) -> str:
    import torch
    method = ctx["method"].eval()
    with torch.no_grad():
        half = method.embed(ctx["x"][:2])
    if not torch.allclose(half, ctx["z"][:2], atol=1e-4, rtol=1e-4):
        raise ValueError(f"an image's embedding changes with the rest of its batch (max {float((half - ctx['z'][:2]).abs().max()):.3g}); "
                         "the harness embeds in arbitrary batches")
    return "rows 0-1 alone == rows 0-1 of the batch of 4"


def _frozen(ctx: dict[str, Any]) -> str:
    from ssfbench.evaluation.embed import embed_frames

    method = ctx["method"].train()  # the harness must freeze it, whatever mode it was left in
    before = _state(method)
    embed_frames(method, method.preprocess, ctx["au"], batch_size=8, device="cpu", progress=False)
    changed = _changed(before, _state(method))
    if changed:
        stats = [k for k in changed if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        what = "BatchNorm running statistics" if stats else "weights"
        raise ValueError(f"embedding changed {len(changed)} tensors ({what}: {', '.join(changed[:3])}); "
                         "embed must not train, update statistics or modify weights")
    if not method.training:
        raise ValueError("embedding left the model in eval mode; the harness restores each module's mode")
    n_bn = sum(k.endswith("running_mean") for k in before)
    return f"{len(before)} tensors compared ({n_bn} BatchNorm layers)"


def _train(ctx: dict[str, Any], steps: int, seed: int, workdir: Path) -> str:
    import torch

    from ssfbench.api.registry import get_dataset
    from ssfbench.train.finetune import FinetuneSettings, finetune
    from ssfbench.train.pretrain import PretrainSettings, pretrain

    method = ctx["method"]
    if not method.trainable:
        raise _Skip("not trainable (a floor): the harness saves its initial weights")
    before = _state(method)
    if method.needs_labels:
        au = ctx["au"]
        fold = au.folds()[0]
        finetune(method, au, fold.train, FinetuneSettings(steps=steps, seed=seed, device="cpu", progress=False),
                 workdir / "labels" / f"{fold.name}.pt")
        losses = json.loads((workdir / "labels" / f"{fold.name}.json").read_text())["finetune"]["train_loss"]
        summary = f"label loss {losses[0]:.4g} -> {losses[-1]:.4g} on {au.name} {fold.name} training rows"
    else:
        frames = max(TINY_VOX["frames"], method.window_span() + 8)
        vox = get_dataset("synth-vox").open(image_size=method.preprocess.input_size, **{**TINY_VOX, "frames": frames})
        metric, _ = method.selection
        try:
            result = pretrain(method, vox, PretrainSettings(steps=steps, seed=seed, device="cpu", num_workers=0,
                                                             progress=False), workdir / "pretrain")
        except KeyError as exc:
            raise KeyError(f"selection metric {metric!r} is not among validation_metrics' keys "
                           f"(method.selection = {method.selection}) [{exc}]") from None
        losses = [r["train_loss"] for r in result.history if "train_loss" in r]
        if not losses or not all(math.isfinite(v) for v in losses):
            raise ValueError(f"training losses {losses} are not finite")
        summary = f"train loss {losses[-1]:.4g}, {metric} {result.best[metric]:.3g}"
    method.eval()
    if not _changed(before, _state(method)):
        raise ValueError("no weight changed after training: the loss reaches no trainable parameter")
    with torch.no_grad():
        ctx["z"] = method.embed(ctx["x"])
    return summary


def _round_trip(ctx: dict[str, Any], workdir: Path) -> str:
    import torch

    from ssfbench.api.checkpoint import load_checkpoint, save_checkpoint

    method = ctx["method"].eval()
    path = workdir / "roundtrip" / "best.pt"
    save_checkpoint(method, path)
    loaded, _ = load_checkpoint(path)
    with torch.no_grad():
        a, b = method.embed(ctx["x"]), loaded.eval().embed(ctx["x"])
    if not torch.equal(a, b):
        raise ValueError(f"the reloaded checkpoint embeds differently (max {float((a - b).abs().max()):.3g}); "
                         "is some state outside state_dict() or config?")
    return f"{path.stat().st_size / 1e6:.1f} MB, identical embeddings after reload"


def _probe(ctx: dict[str, Any], seed: int) -> str:
    from ssfbench.evaluation.embed import embed_frames
    from ssfbench.evaluation.protocol import probe_dataset

    au, method = ctx["au"], ctx["method"]
    x = embed_frames(method, method.preprocess, au, batch_size=16, device="cpu", progress=False)
    scores = probe_dataset(x, au, seed=seed)
    return f"{len(scores['scores_per_fold'])} folds of {au.name}, mean F1 {scores['avg']:.3f} (tiny data: not a score)"


__all__ = ["Check", "MockRunReport", "mock_run", "TINY_AU", "TINY_VOX"]
