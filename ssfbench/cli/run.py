"""The stages of one run: ``ssfbench run``, ``pretrain``, ``embed`` and ``probe``.

They share every option (:data:`ssfbench.cli.options.RUN_OPTIONS`), so the same options name the
same run, whichever stage is asked for. The work is :func:`ssfbench.pipeline.sweep.sweep` (the k x seed sweep
and the ensemble, over :func:`ssfbench.pipeline.runner.run`); heavy imports happen inside :func:`execute`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ssfbench.cli.config import config_option, recorded_argv
from ssfbench.cli.options import (
    ENSEMBLE_OPTION,
    parse_data_options,
    parse_roots,
    parse_settings,
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
    execute(None, **with_recipe(options))


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
    execute("pretrain", **{**with_recipe(options), "datasets": ()})


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
    execute("embed", **with_recipe(options))


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
    execute(None, reuse_only=True, **with_recipe(options))


#: the commands of this module, registered on the ``ssfbench`` group by :mod:`ssfbench.cli`
COMMANDS = (run, pretrain, embed, probe)

#: where an option's value counts as given explicitly (it then overrides a recipe's value)
EXPLICIT = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP,
            click.core.ParameterSource.ENVIRONMENT)


def with_recipe(options: dict[str, Any]) -> dict[str, Any]:
    """The current command's parsed ``options`` with ``--recipe NAME`` applied
    (:func:`ssfbench.pipeline.recipe.apply`): the recipe's option values where the command line and any
    ``--config`` file give none, its settings before the command's own ``--set`` pairs, and
    ``options["recipe"]`` replaced by the record of what was applied and overridden (None: no recipe)."""
    name = options.get("recipe")
    if name is None:
        return options
    from ssfbench.cli.config import option_keys
    from ssfbench.pipeline import recipe as recipes

    chosen = recipes.load(name)
    ctx = click.get_current_context()
    keys = option_keys(ctx.command)
    current = {key: (keys[key][0].name, options[keys[key][0].name],
                     ctx.get_parameter_source(keys[key][0].name) in EXPLICIT)
               for key in [*chosen.options, "steps"] if key in keys}
    applied = recipes.apply(chosen, options["method_name"], current, parse_settings(options["settings"]))
    out = dict(options)
    for param_name, value in applied.options.items():
        param = next(p for p in ctx.command.params if p.name == param_name)
        try:
            out[param_name] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise UserError(f"{chosen.path}: {param_name}: {exc.format_message()}") from None
    out["settings"] = applied.settings + tuple(options["settings"])
    out["recipe"] = applied.record
    return out


def given_options() -> set[str]:
    """The parameter names of the current command whose values were given (command line, ``--config``
    file or environment), not left at their defaults."""
    ctx = click.get_current_context()
    return {p.name for p in ctx.command.params if p.name and ctx.get_parameter_source(p.name) in EXPLICIT}


def execute(stop_after: str | None, *, method_name: str, ks: tuple[int, ...], steps: int | None, epochs: int | None,
            image_size: int, backbone: str, pretrained: str | None, weights: Path | None, bn_stats: str, seed: int,
            seeds: tuple[int, ...], datasets: tuple[str, ...], roots: tuple[str, ...], pretrain_data: str,
            data_options: tuple[str, ...], lr: float | None, batch_size: int | None, settings: tuple[str, ...],
            out: Path, device: str, workers: str, overwrite: str, quiet: bool, ensemble: bool = False,
            resume: bool = True, checkpoint_every: int = 0, embed_batch_size: int = 256,
            check_sync_every: int = 0, reuse_only: bool = False, init_control: bool = True,
            log: str | None = None, recipe: dict[str, Any] | None = None, precision: str = "auto") -> None:
    """``run`` (``stop_after`` None), ``pretrain`` or ``embed`` with the parsed options;
    ``probe`` is ``run`` with ``reuse_only``; ``recipe`` is the record :func:`with_recipe` left (its values
    already applied). The options are parsed here and the work is
    :func:`ssfbench.pipeline.sweep.sweep`'s; this prints each run's tables (or stage summary) as it ends.
    Bad options raise :class:`UserError` before any work."""
    from ssfbench.pipeline.sweep import base_spec, sweep
    from ssfbench.runtime.device import resolve_workers

    num_workers = resolve_workers(workers, device)
    base = base_spec(method_name, ks=ks, steps=steps, epochs=epochs, image_size=image_size, backbone=backbone,
                     pretrained=pretrained, weights=weights, bn_stats=bn_stats, datasets=datasets,
                     roots=parse_roots(roots), pretrain_data=pretrain_data,
                     data_options=parse_data_options(data_options), settings=parse_settings(settings), lr=lr,
                     batch_size=batch_size, out=out, device=device, num_workers=num_workers, overwrite=overwrite,
                     progress=not quiet, resume=resume, checkpoint_every=checkpoint_every,
                     embed_batch_size=embed_batch_size, check_sync_every=check_sync_every, stop_after=stop_after,
                     reuse_only=reuse_only, init_control=init_control, log=log, precision=precision, recipe=recipe,
                     argv=recorded_argv(), given=given_options())

    def show(output: RunOutput) -> None:
        if stop_after is None:
            print_results(output.results, out)
        else:
            print_stage(output)

    sweep(base, ks=ks, seeds=seeds, seed=seed, epochs=epochs, ensemble=ensemble, on_run=show,
          on_ensemble=lambda rows: print_results(rows, out))
