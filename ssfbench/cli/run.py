"""The stages of one run: ``ssfbench run``, ``pretrain``, ``embed`` and ``probe``.

They share every option (:data:`ssfbench.cli.options.RUN_OPTIONS`), so the same options name the
same run, whichever stage is asked for. The work is :func:`ssfbench.pipeline.runner.run`; heavy imports happen
inside :func:`execute`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ssfbench.cli.config import config_option, recorded_argv
from ssfbench.cli.options import (
    ENSEMBLE_OPTION,
    parse_data_options,
    parse_roots,
    parse_settings,
    parse_workers,
    run_options,
)
from ssfbench.cli.printing import print_results, print_stage
from ssfbench.errors import UserError

if TYPE_CHECKING:
    from ssfbench.results.records import RunOutput


@click.command()
@config_option
@run_options
@ENSEMBLE_OPTION
def run(**options) -> None:
    """Pretrain (or load) an encoder, embed, probe, print the per-label tables and update the
    leaderboards. With no dataset options it runs the embedded synthetic benchmark.

    \b
    Ensemble (the paper's "Ranking Ensemble"):
      ssfbench run --method ranking --k 1 2 4
    trains (or reuses, same settings = same run) the k=1, k=2 and k=4 encoders, then evaluates the
    concatenation of their cached embeddings as one more row, variant "k=1+2+4" (per seed), and the
    concatenation of their step-0 controls as its own initialisation (compare's Δ own init).

    \b
    Interrupted runs (killed, pre-empted, Ctrl-C): rerun the same command. Pretraining continues
    from runs/<run_id>/last.pt and embedding from the partial cache, and the outputs are the same
    as an uninterrupted run's (bitwise on CPU). --fresh starts pretraining over.

    \b
    Several processes (GPUs or machines): torchrun --nproc_per_node=N -m ssfbench run ...
    """
    execute(None, **options)


@click.command()
@config_option
@run_options
def pretrain(**options) -> None:
    """Pretrain (or load) the encoder of a run and stop: runs/<run_id>/best.pt, which later
    `run` / `embed` commands with the same options reuse.

    \b
    Several processes (DistributedDataParallel; gloo on CPU, NCCL on GPUs):
      torchrun --nproc_per_node=4 -m ssfbench pretrain --method ranking --k 2 --steps 20000
    and across machines with torchrun's usual --nnodes/--node-rank/--rdzv-endpoint flags.
    """
    execute("pretrain", **{**options, "datasets": ()})


@click.command()
@config_option
@run_options
def embed(**options) -> None:
    """Pretrain (or reuse) a run's encoder and write its HDF5 embedding caches of --datasets; no probe.

    \b
    Under torchrun the batches are shared out over the processes and rank 0 writes one cache,
    the same as a single process writes:
      torchrun --nproc_per_node=4 -m ssfbench embed --method ranking --k 2 --datasets bp4d --root bp4d=PATH
    """
    execute("embed", **options)


@click.command()
@config_option
@run_options
@ENSEMBLE_OPTION
def probe(**options) -> None:
    """Probe the cached embeddings of a finished `embed` with the same options: print the per-label
    tables, write the results and update the leaderboards, exactly as `run` would.

    Nothing is pretrained or embedded: a missing checkpoint or embedding cache (or one that does
    not match the options) is an error naming the file. The stages of one run:

    \b
      ssfbench pretrain --method ranking --k 2
      ssfbench embed    --method ranking --k 2 --datasets synth-au
      ssfbench probe    --method ranking --k 2 --datasets synth-au
    """
    execute(None, reuse_only=True, **options)


#: the commands of this module, registered on the ``ssfbench`` group by :mod:`ssfbench.cli`
COMMANDS = (run, pretrain, embed, probe)


def execute(stop_after: str | None, *, method_name: str, ks: tuple[int, ...], steps: int | None, epochs: int | None,
            image_size: int, backbone: str, pretrained: str | None, weights: Path | None, bn_stats: str, seed: int,
            seeds: tuple[int, ...], datasets: tuple[str, ...], roots: tuple[str, ...], pretrain_data: str,
            data_options: tuple[str, ...], lr: float | None, batch_size: int | None, settings: tuple[str, ...],
            out: Path, device: str, workers: str, overwrite: str, quiet: bool, ensemble: bool = False,
            resume: bool = True, checkpoint_every: int = 0, embed_batch_size: int = 256,
            check_sync_every: int = 0, reuse_only: bool = False, init_control: bool = True,
            log: str | None = None) -> None:
    """``run`` (``stop_after`` None), ``pretrain`` or ``embed`` with the parsed options;
    ``probe`` is ``run`` with ``reuse_only``. Bad options raise :class:`UserError` before any work."""
    from ssfbench.evaluation.metrics import NoPositivesWarning
    from ssfbench.pipeline.runner import DEFAULT_EVAL_DATASETS, DEFAULT_STEPS, RunSpec
    from ssfbench.pipeline.runner import ensemble as run_ensemble
    from ssfbench.pipeline.runner import run as run_spec
    from ssfbench.runtime import distributed

    if any(k < 1 for k in ks):
        raise UserError(f"--k must be >= 1, got {min(ks)}")
    axis = "k"
    if ks:
        from ssfbench.api.registry import get_method

        if get_method(method_name).ensemble_axis != axis:
            raise UserError(f"--k: method {method_name!r} has no interval k (its settings go through --set KEY=VALUE)")
    if reuse_only and (not resume or overwrite == "always"):
        raise UserError(f"{'--fresh' if not resume else '--overwrite always'}: probe never pretrains or embeds; "
                        "give it to `ssfbench pretrain` / `ssfbench embed`")
    num_workers = parse_workers(workers, device)
    if log == "tensorboard":
        from ssfbench.train.curves import require_tensorboard

        require_tensorboard()
    if image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {image_size}")
    overrides: dict[str, object] = parse_settings(settings)
    if lr is not None:
        overrides["lr"] = lr
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if weights is not None and not weights.is_file():
        raise UserError(f"{weights}: weights file not found")
    if steps is not None and epochs is not None:
        raise UserError("give --steps or --epochs, not both")
    spec_steps = steps if steps is not None else DEFAULT_STEPS
    if steps is not None and steps < 0:
        raise UserError(f"--steps must be >= 0, got {steps}")
    base = RunSpec(method=method_name, backbone=backbone, image_size=image_size, pretrained=pretrained,
                   weights=weights, bn_stats=bn_stats, steps=spec_steps,
                   datasets=() if stop_after == "pretrain" else tuple(datasets) or DEFAULT_EVAL_DATASETS,
                   roots=parse_roots(roots), dataset_options=parse_data_options(data_options),
                   pretrain_data=pretrain_data, out=out, device=device,
                   num_workers=num_workers, overwrite=overwrite, progress=not quiet, resume=resume,
                   checkpoint_every=checkpoint_every, embed_batch_size=embed_batch_size, argv=recorded_argv(),
                   stop_after=stop_after, sync_check_every=check_sync_every, reuse_only=reuse_only,
                   init_control=init_control, log=log)
    members: dict[int, list[RunOutput]] = {}  # seed -> one output per value of the ensemble axis
    for k in tuple(dict.fromkeys(ks)) or (None,):
        for s in seeds or (seed,):
            spec_overrides = dict(overrides) if k is None else {**overrides, axis: k}
            spec = RunSpec(**{**base.__dict__, "overrides": spec_overrides, "seed": s})
            if epochs is not None:
                spec.steps = epochs_to_steps(spec, epochs)
            with warnings.catch_warnings():  # print_results reports them, once, by dataset
                warnings.simplefilter("ignore", NoPositivesWarning)
                members.setdefault(s, []).append(run_spec(spec))
            if not distributed.world().is_main:
                continue
            if stop_after is None:
                print_results(members[s][-1].results, out)
            else:
                print_stage(members[s][-1])
    if ensemble and len(set(ks)) > 1 and distributed.world().is_main:
        for s, results in members.items():
            print_results(run_ensemble(results, RunSpec(**{**base.__dict__, "seed": s})), out)
            controls = [r.control for r in results if r.control is not None]
            if len(controls) == len(results):  # the ensemble's own initialisation, for compare's Δ
                print_results(run_ensemble(controls, RunSpec(**{**base.__dict__, "seed": s})), out)
    distributed.shutdown()


def epochs_to_steps(spec, epochs: int) -> int:
    """Steps that make ``epochs`` passes over the pretraining videos' training split (a step visits
    ``ceil(batch / windows_per_visit)`` videos: see :class:`ssfbench.train.pretrain.WindowBatches`)."""
    from ssfbench.api.dataset import VisitsWindows
    from ssfbench.pipeline.runner import build_method, open_dataset
    from ssfbench.train.pretrain import VALIDATION_FRACTION, split_videos

    method = build_method(spec)
    videos = open_dataset(spec.pretrain_data, spec)
    n_train = len(split_videos(len(videos), VALIDATION_FRACTION, spec.seed)[0])
    visits_per_step = -(-method.config.batch_size // (videos.windows_per_visit if isinstance(videos, VisitsWindows) else 1))
    return epochs * max(1, n_train // visits_per_step)
