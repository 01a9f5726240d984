"""What ``ssfbench run`` does, as a library: a checked :class:`~ssfbench.pipeline.spec.RunSpec` from typed
options (:func:`base_spec`), the k x seed sweep over it with the ensemble rows (:func:`sweep`), and
:func:`run`, the Python form of the command (``ssfbench.run``).

The command line (:mod:`ssfbench.cli.run`) only parses its options into these arguments and prints
what :func:`sweep` reports through its callbacks, so a Python caller gets the same runs, files
and leaderboard rows as the command with the same options.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssfbench.errors import UserError
from ssfbench.results.records import Result, RunOutput

if TYPE_CHECKING:
    from ssfbench.pipeline.spec import RunSpec

#: the setting a ``k`` sweep varies (``Method.ensemble_axis`` of the methods that take ``--k``)
K_AXIS = "k"


def base_spec(method: str, *, ks: Sequence[int] = (), steps: int | None = None, image_size: int | None = None,
              backbone: str = "resnet18", pretrained: str | None = None, weights: str | Path | None = None,
              bn_stats: str = "checkpoint", datasets: Sequence[str] = (), roots: Mapping[str, str | Path] | None = None,
              pretrain_data: str = "synth-vox", data_options: Mapping[str, Mapping[str, Any]] | None = None,
              settings: Mapping[str, Any] | None = None, lr: float | None = None, batch_size: int | None = None,
              out: str | Path = "ssfbench-out", device: str = "auto", num_workers: int = 0,
              overwrite: str = "only-missing", progress: bool = True, resume: bool = True,
              checkpoint_every: int = 0, embed_batch_size: int = 256, check_sync_every: int = 0,
              stop_after: str | None = None, reuse_only: bool = False, init_control: bool = True,
              log: str | None = None, epochs: int | None = None, precision: str = "auto",
              recipe: Mapping[str, Any] | None = None, argv: Sequence[str] = (),
              given: Collection[str] | None = None) -> RunSpec:
    """The :class:`~ssfbench.pipeline.spec.RunSpec` every run of a sweep starts from (seed and ``k`` are set
    per run by :func:`sweep`), after the checks ``ssfbench run`` makes on its options: any problem is
    one :class:`UserError` naming the option, raised before any work. ``image_size`` None is the
    harness default; ``datasets`` empty is the default evaluation sets (none for ``stop_after
    == "pretrain"``); ``settings`` are ``--set`` values (strings are cast to the setting's type);
    ``recipe`` is the record of a recipe already applied to these options (:func:`apply_recipe`).

    With ``weights`` (an ssfbench checkpoint), the run is the checkpoint's: its method settings,
    backbone and image size are used (:func:`checkpoint_options`), and an option the caller gave that
    contradicts them, ``steps``/``epochs`` (nothing is pretrained) or a ``recipe`` is a UserError.
    ``given`` names the keywords the caller gave explicitly (None: those whose value is not the default)."""
    from ssfbench.pipeline.spec import DEFAULT_EVAL_DATASETS, DEFAULT_IMAGE_SIZE, RunSpec
    from ssfbench.train.pretrain import DEFAULT_STEPS

    if any(k < 1 for k in ks):
        raise UserError(f"--k must be >= 1, got {min(ks)}")
    if ks:
        from ssfbench.api.registry import get_method

        if get_method(method).ensemble_axis != K_AXIS:
            raise UserError(f"--k: method {method!r} has no interval k (its settings go through --set KEY=VALUE)")
    if reuse_only and (not resume or overwrite == "always"):
        raise UserError(f"{'--fresh' if not resume else '--overwrite always'}: probe never pretrains or embeds; "
                        "give it to `ssfbench pretrain` / `ssfbench embed`")
    if log == "tensorboard":
        from ssfbench.train.curves import require_tensorboard

        require_tensorboard()
    image_size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    if image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {image_size}")
    overrides: dict[str, object] = dict(settings or {})
    if lr is not None:
        overrides["lr"] = lr
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    weights = Path(weights) if weights is not None else None
    if weights is not None and not weights.is_file():
        raise UserError(f"{weights}: weights file not found")
    if steps is not None and epochs is not None:
        raise UserError("give --steps or --epochs, not both")
    if weights is not None and not _trains_on_labels(method):  # those refuse --weights in the runner
        if given is None:
            given = {name for name, value, default in (("image_size", image_size, DEFAULT_IMAGE_SIZE),
                                                        ("backbone", backbone, "resnet18"),
                                                        ("pretrained", pretrained, None)) if value != default}
        if recipe is not None:
            raise UserError(f"--recipe {recipe['name']}: a recipe says how to pretrain, and --weights {weights} "
                            "is loaded, not pretrained; leave one out")
        for name, value in (("steps", steps), ("epochs", epochs)):
            if value is not None:
                raise UserError(f"--{name} {value}: nothing is pretrained with --weights {weights} (the encoder is "
                                f"loaded from it); leave --{name} out")
        overrides, backbone, image_size = checkpoint_options(
            method, weights, ks=ks, overrides=overrides, backbone=backbone, image_size=image_size,
            pretrained=pretrained, given=given)
    if steps is not None and steps < 0:
        raise UserError(f"--steps must be >= 0, got {steps}")
    return RunSpec(method=method, overrides=overrides, backbone=backbone, image_size=image_size,
                   pretrained=pretrained, weights=weights, bn_stats=bn_stats,
                   steps=steps if steps is not None else DEFAULT_STEPS,
                   datasets=() if stop_after == "pretrain" else tuple(datasets) or DEFAULT_EVAL_DATASETS,
                   roots={name: Path(p) for name, p in (roots or {}).items()},
                   dataset_options={name: dict(opts) for name, opts in (data_options or {}).items()},
                   pretrain_data=pretrain_data, out=Path(out), device=device, num_workers=num_workers,
                   overwrite=overwrite, progress=progress, resume=resume, checkpoint_every=checkpoint_every,
                   embed_batch_size=embed_batch_size, argv=tuple(argv), stop_after=stop_after,
                   sync_check_every=check_sync_every, reuse_only=reuse_only, init_control=init_control, log=log,
                   precision=precision, epochs=epochs, recipe=dict(recipe) if recipe is not None else None)


def _trains_on_labels(method: str) -> bool:
    """Whether ``method`` trains on each fold's labels (``Method.needs_labels``: its ``--steps`` are fine-tuning steps)."""
    from ssfbench.api.registry import get_method

    return bool(get_method(method).needs_labels)


#: the command-line option that sets a method setting (the others go through ``--set KEY=VALUE``)
SETTING_OPTIONS = {"lr": "--lr", "batch_size": "--batch-size", K_AXIS: "--k"}


def _option_text(key: str, value: Any) -> str:
    """How the command line gives method setting ``key`` = ``value`` (``--k 1``, ``--set margin=0.1``)."""
    return f"{SETTING_OPTIONS[key]} {value}" if key in SETTING_OPTIONS else f"--set {key}={value}"


def checkpoint_options(method: str, weights: Path, *, ks: Sequence[int], overrides: Mapping[str, Any], backbone: str,
                       image_size: int, pretrained: str | None,
                       given: Collection[str]) -> tuple[dict[str, Any], str, int]:
    """The method settings (``overrides``), backbone and image size of a ``--weights`` run, taken from
    the ssfbench checkpoint ``weights`` holds: evaluating a file is evaluating what it was trained as,
    so its row, variant and result record must say so (a k=2 checkpoint is "Ranking k=2", whatever
    the method's default). A value the caller gave (an ``overrides`` key, ``ks``, or a name in ``given``:
    ``backbone``, ``image_size``, ``pretrained``) that differs from the checkpoint's is a
    :class:`UserError` naming both. A file that is not an ssfbench checkpoint (a released layout, a
    method's own ``weights_format``) records no settings: the given values are returned unchanged."""
    from ssfbench.api.checkpoint import FORMAT
    from ssfbench.api.registry import get_method
    from ssfbench.runtime.safeload import read_torch_file

    cls = get_method(method)
    if cls.weights_format is not None:
        return dict(overrides), backbone, image_size
    payload = read_torch_file(weights, "weights file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("method") != method:
        return dict(overrides), backbone, image_size  # released layouts; another method's checkpoint: load_weights says so
    trained = f"{weights} was trained with"
    try:
        asked = cls.Config().replace(**overrides).to_dict()
    except (KeyError, TypeError, ValueError):
        return dict(overrides), backbone, image_size  # build_method names the bad setting
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    saved = {key: value for key, value in dict(payload.get("config") or {}).items() if key in fields}
    out = dict(overrides)
    for key, value in saved.items():
        if key == K_AXIS and ks:
            wrong = [k for k in dict.fromkeys(ks) if k != value]
            if wrong:
                raise UserError(f"--k {' '.join(map(str, dict.fromkeys(ks)))}: {trained} k={value}; leave --k out "
                                "(the checkpoint's settings are used) or give --k " + str(value))
        elif key in overrides and asked.get(key) != value:
            raise UserError(f"{_option_text(key, overrides[key])}: {trained} {key}={value}; leave it out (the "
                            f"checkpoint's settings are used) or give {_option_text(key, value)}")
        elif key not in overrides and asked.get(key, value) != value:
            out[key] = value
    for name, current, flag in (("backbone", backbone, "--backbone"), ("image_size", image_size, "--image-size"),
                                ("pretrained", pretrained, "--pretrained")):
        value = payload.get(name)
        if name in given and current != value:
            said = f"{flag.removeprefix('--')} {value}" if value is not None else f"no {flag}"
            raise UserError(f"{flag} {current}: {trained} {said}; leave {flag} out "
                            "(the checkpoint's settings are used)" + (f" or give {flag} {value}" if value else ""))
    return out, str(payload.get("backbone", backbone)), int(payload.get("image_size", image_size))


@dataclass
class Sweep:
    """What :func:`sweep` produced: one :class:`RunOutput` per (k, seed) run in the order they ran
    (k outer, seed inner; under torchrun, only rank 0's outputs hold results), and the ensemble rows
    (per seed: its ensemble, then its step-0 controls' ensemble)."""

    runs: list[RunOutput] = field(default_factory=list)
    ensembles: list[list[Result]] = field(default_factory=list)

    @property
    def results(self) -> list[Result]:
        """Every result written: each run's, then each ensemble's."""
        return [r for out in self.runs for r in out.results] + [r for rows in self.ensembles for r in rows]


def sweep(base: RunSpec, *, ks: Sequence[int] = (), seeds: Sequence[int] = (), seed: int = 0, epochs: int | None = None,
          ensemble: bool = False, on_run: Callable[[RunOutput], None] | None = None,
          on_ensemble: Callable[[list[Result]], None] | None = None) -> Sweep:
    """Run ``base`` for every ``k`` in ``ks`` (none: the method's own setting) and every seed in
    ``seeds`` (none: ``seed``), as ``ssfbench run`` does; with ``ensemble`` and several distinct ``k``,
    then score per seed the concatenation of the k encoders' embeddings (variant ``k=1+2+4``) and of
    their step-0 controls' (its own initialisation, for compare's Δ). ``epochs`` replaces the spec's
    steps by the steps that make that many passes over the pretraining split (:func:`epochs_to_steps`).
    ``on_run`` sees each run's output and ``on_ensemble`` each ensemble's results as soon as they are
    written (on rank 0 only under torchrun); the process group is shut down at the end."""
    import dataclasses

    from ssfbench.evaluation.metrics import NoPositivesWarning
    from ssfbench.pipeline.ensemble import ensemble as run_ensemble
    from ssfbench.pipeline.runner import run as run_spec
    from ssfbench.runtime import distributed

    done = Sweep()
    members: dict[int, list[RunOutput]] = {}  # seed -> one output per value of the ensemble axis
    for k in tuple(dict.fromkeys(ks)) or (None,):
        for s in seeds or (seed,):
            overrides = dict(base.overrides) if k is None else {**base.overrides, K_AXIS: k}
            spec = dataclasses.replace(base, overrides=overrides, seed=s)
            if epochs is not None:
                spec.steps = epochs_to_steps(spec, epochs)
            with warnings.catch_warnings():  # the results record them; the command prints them once, by dataset
                warnings.simplefilter("ignore", NoPositivesWarning)
                output = run_spec(spec)
            members.setdefault(s, []).append(output)
            done.runs.append(output)
            if on_run is not None and distributed.world().is_main:
                on_run(output)
    if ensemble and len(set(ks)) > 1 and distributed.world().is_main:
        for s, outputs in members.items():
            spec = dataclasses.replace(base, seed=s)
            groups = [outputs]
            controls = [r.control for r in outputs if r.control is not None]
            if len(controls) == len(outputs):  # the ensemble's own initialisation, for compare's Δ
                groups.append(controls)
            for group in groups:
                rows = run_ensemble(group, spec)
                done.ensembles.append(rows)
                if on_ensemble is not None:
                    on_ensemble(rows)
    distributed.shutdown()
    return done


def epochs_to_steps(spec: RunSpec, epochs: int) -> int:
    """Steps that make ``epochs`` passes over the pretraining videos' training split (a step visits
    ``ceil(batch / windows_per_visit)`` videos, one with ``anchor=fixed``: see
    :class:`ssfbench.train.windows.WindowBatches`)."""
    from ssfbench.pipeline.spec import build_method, open_dataset
    from ssfbench.train.pretrain import PretrainSettings
    from ssfbench.train.windows import split_videos, windows_per_visit

    method = build_method(spec)
    videos = open_dataset(spec.pretrain_data, spec)
    n_train = len(split_videos(len(videos), PretrainSettings.val_fraction, spec.seed)[0])
    visits_per_step = -(-method.config.batch_size // windows_per_visit(videos, method))
    return epochs * max(1, n_train // visits_per_step)


def run(method: str, *, k: int | Sequence[int] = (), seeds: int | Sequence[int] = (0,), steps: int | None = None,
        epochs: int | None = None, image_size: int | None = None, backbone: str = "resnet18",
        pretrained: str | None = None, weights: str | Path | None = None, bn_stats: str = "checkpoint",
        datasets: Sequence[str] = (), roots: Mapping[str, str | Path] | None = None,
        pretrain_data: str = "synth-vox", data_options: Mapping[str, Mapping[str, Any]] | None = None,
        settings: Mapping[str, Any] | None = None, lr: float | None = None, batch_size: int | None = None,
        out: str | Path = "ssfbench-out", device: str = "auto", workers: int | str = "auto",
        overwrite: str = "only-missing", progress: bool = True, ensemble: bool = True, resume: bool = True,
        checkpoint_every: int = 0, init_control: bool = True, log: str | None = None, recipe: str | None = None,
        precision: str = "auto") -> list[Result]:
    """``ssfbench run`` from Python: pretrain (or reuse, or load ``weights``), embed, probe, write the
    results JSON and leaderboards under ``out``, for every ``k`` (``--k``) and seed, plus the ensemble
    rows of several ``k`` (``ensemble``), exactly as the command with the same options does (the same
    run ids, checkpoints, caches and scores). Keyword names follow the command's options
    (``settings`` = ``--set``, ``data_options`` = ``--data-option`` as ``{dataset: {key: value}}``,
    ``roots`` = ``--root`` as ``{dataset: path}``, ``workers`` a count or ``"auto"``). Returns every
    result written: each run's (k outer, seed inner), then the ensembles'. ``recipe`` (``--recipe``)
    applies a recipe's values to every keyword left at its default (:func:`apply_recipe`). Bad
    options raise :class:`~ssfbench.errors.UserError` before any work."""
    ks = (k,) if isinstance(k, int) else tuple(k)
    seed_list = (seeds,) if isinstance(seeds, int) else tuple(seeds)
    from ssfbench.runtime.device import resolve_workers

    workers = resolve_workers(workers, device)
    argv = command_line(method, ks=ks, seeds=seed_list, steps=steps, epochs=epochs, image_size=image_size,
                        backbone=backbone, pretrained=pretrained, weights=weights, bn_stats=bn_stats,
                        datasets=datasets, roots=roots, pretrain_data=pretrain_data, data_options=data_options,
                        settings=settings, lr=lr, batch_size=batch_size, out=out, device=device, workers=workers,
                        overwrite=overwrite, ensemble=ensemble, resume=resume, checkpoint_every=checkpoint_every,
                        init_control=init_control, log=log, recipe=recipe, precision=precision)
    recipe_record = None
    if recipe is not None:
        chosen = {"backbone": backbone, "pretrained": pretrained, "pretrain_data": pretrain_data,
                  "image_size": image_size, "batch_size": batch_size, "epochs": epochs, "lr": lr,
                  "precision": precision, "steps": steps}
        applied, settings, recipe_record = apply_recipe(recipe, method, chosen, dict(settings or {}))
        backbone, pretrained, pretrain_data = applied["backbone"], applied["pretrained"], applied["pretrain_data"]
        image_size, batch_size, epochs = applied["image_size"], applied["batch_size"], applied["epochs"]
        lr, precision = applied["lr"], applied["precision"]
    base = base_spec(method, ks=ks, steps=steps, epochs=epochs, image_size=image_size, backbone=backbone,
                     pretrained=pretrained, weights=weights, bn_stats=bn_stats, datasets=datasets, roots=roots,
                     pretrain_data=pretrain_data, data_options=data_options, settings=settings, lr=lr,
                     batch_size=batch_size, out=out, device=device, num_workers=workers, overwrite=overwrite,
                     progress=progress, resume=resume, checkpoint_every=checkpoint_every,
                     init_control=init_control, log=log, precision=precision, recipe=recipe_record, argv=argv)
    return sweep(base, ks=ks, seeds=seed_list, epochs=epochs, ensemble=ensemble).results


def run_default(keyword: str) -> Any:
    """The default of one of :func:`run`'s keywords (its signature is the one owner of them)."""
    import inspect

    return inspect.signature(run).parameters[keyword].default


def apply_recipe(name: str, method: str, chosen: Mapping[str, Any],
                 settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Recipe ``name`` applied to :func:`run`'s keywords ``chosen`` (a keyword differing from its
    default, :func:`run_default`, counts as given and overrides the recipe, as an explicit
    command-line option does) and to its ``settings`` (``--set``). Returns the keywords with the
    recipe's values applied, the settings with the recipe's first, and the record results keep."""
    from ssfbench.pipeline import recipe as recipes

    chosen_recipe = recipes.load(name)
    options = {key: (key.replace("-", "_"), chosen[key.replace("-", "_")],
                     chosen[key.replace("-", "_")] != run_default(key.replace("-", "_")))
               for key in [*chosen_recipe.options, "steps"] if key.replace("-", "_") in chosen}
    applied = recipes.apply(chosen_recipe, method, options, {k: str(v) for k, v in settings.items()})
    recipe_settings = dict(pair.split("=", 1) for pair in applied.settings)
    return {**chosen, **applied.options}, {**recipe_settings, **settings}, applied.record


def command_line(method: str, **options: Any) -> tuple[str, ...]:
    """The ``ssfbench run`` command line equivalent to :func:`run` with these keyword values (those at
    the command's defaults left out): what the results record as ``rerun.argv``, so ``ssfbench rerun``
    and a reader of the JSON see the command that makes the same run."""
    argv = ["ssfbench", "run", "--method", method]
    for key in ("steps", "epochs", "image_size", "backbone", "pretrained", "weights", "bn_stats", "pretrain_data",
                "lr", "batch_size", "out", "device", "overwrite", "checkpoint_every", "log", "recipe", "precision"):
        default = run_default(key)
        value = options.get(key, default)
        if value is not None and str(value) != str(default):
            argv += [f"--{key.replace('_', '-')}", str(value)]
    for flag, values in (("--k", options.get("ks", ())), ("--seeds", options.get("seeds", ())),
                         ("--datasets", options.get("datasets", ()))):
        if values:
            argv += [flag, *map(str, values)]
    argv += [x for name, path in (options.get("roots") or {}).items() for x in ("--root", f"{name}={path}")]
    argv += [x for name, opts in (options.get("data_options") or {}).items() for key, value in opts.items()
             for x in ("--data-option", f"{name}.{key}={json.dumps(value) if not isinstance(value, str) else value}")]
    argv += [x for key, value in (options.get("settings") or {}).items() for x in ("--set", f"{key}={value}")]
    argv += ["--workers", str(options.get("workers", 0))]
    for key, flag in (("ensemble", "--no-ensemble"), ("resume", "--fresh"), ("init_control", "--no-init-control")):
        if options.get(key) is False:
            argv.append(flag)
    return tuple(argv)


__all__ = ["K_AXIS", "Sweep", "base_spec", "checkpoint_options", "sweep", "run", "epochs_to_steps", "command_line",
           "apply_recipe"]
