"""The ``ssfbench`` command line (click). Every bad input ends in one ``error:`` line and exit code 2.

Options that take lists accept them space-separated after one flag, as in
``ssfbench compare --datasets bp4d disfa`` or ``ssfbench run --method ranking --k 1 2 4``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from ssfbench.errors import UserError

#: options whose values may follow one flag space-separated; expanded to repeated flags before click
LIST_OPTIONS = ("--datasets", "--k", "--methods", "--seeds")


def expand_list_options(argv: list[str]) -> list[str]:
    """``--datasets a b`` -> ``--datasets a --datasets b`` for the options in ``LIST_OPTIONS``."""
    out: list[str] = []
    current = None
    for arg in argv:
        if arg.startswith("-"):
            current = arg if arg in LIST_OPTIONS else None
            if current is None:
                out.append(arg)
            continue
        if current is not None:
            out.extend([current, arg])
        else:
            out.append(arg)
    return out


def parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("lr=0.01", "n=4")`` -> ``{"lr": "0.01", "n": "4"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_data_options(pairs: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``("synth-vox.identities=1000",)`` -> ``{"synth-vox": {"identities": 1000}}`` (numbers parsed)."""
    import json

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


def parse_workers(value: str, device: str) -> int:
    """``--workers``: a count >= 0, or ``auto`` (see :func:`ssfbench.device.default_workers`)."""
    if value == "auto":
        from ssfbench.device import default_workers, resolve_device

        return default_workers(resolve_device(device))
    if not value.isdigit():
        raise UserError(f"--workers expects a number >= 0 or auto, got {value!r}")
    return int(value)


def parse_roots(pairs: tuple[str, ...]) -> dict[str, Path]:
    """``("bp4d=/data/BP4D",)`` -> ``{"bp4d": Path("/data/BP4D")}``."""
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise UserError(f"--root expects NAME=PATH, got {pair!r}")
        out[name] = Path(path)
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ssfbench")
def cli() -> None:
    """ssfbench: benchmark self-supervised facial representations for AU detection and expression
    recognition with one frozen-encoder linear-probe protocol.

    \b
    Quick start (no downloads; the embedded synthetic benchmark):
      ssfbench run --method random            # the floor
      ssfbench run --method ranking --k 2     # pretrain, embed, probe, print tables
      ssfbench compare --datasets synth-au synth-expr
    """


#: the options of ``run``, ``pretrain`` and ``embed`` (the stages of one run share its identity)
_RUN_OPTIONS = [
    click.option("--method", "method_name", required=True, help="Registered method (see `ssfbench list methods`)."),
    click.option("--k", "ks", type=int, multiple=True, help="Ranking interval k (ranking, triplet, npair); several values (--k 1 2 4) train or reuse one encoder each, then add their ensemble row."),
    click.option("--steps", type=int, default=None, help="Pretraining steps (default 300: the synthetic default budget)."),
    click.option("--epochs", type=int, default=None, help="Pretraining epochs instead of --steps."),
    click.option("--image-size", type=int, default=64, show_default=True, help="Input size of the encoder (and of the synthetic renderer)."),
    click.option("--backbone", default="resnet18", show_default=True, help="Any timm model name."),
    click.option("--pretrained", default=None, help="Backbone init: 'imagenet' (timm weights, must be cached locally) or a state-dict path."),
    click.option("--weights", type=click.Path(path_type=Path), default=None, help="Load this checkpoint instead of pretraining."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation, sampling and probe."),
    click.option("--seeds", type=int, multiple=True, help="Several seeds (space-separated); overrides --seed."),
    click.option("--datasets", multiple=True, help="Evaluation datasets (default: synth-au synth-expr)."),
    click.option("--root", "roots", multiple=True, help="NAME=PATH of a dataset's local copy (repeatable)."),
    click.option("--pretrain-data", default="synth-vox", show_default=True, help="Video dataset to pretrain on."),
    click.option("--data-option", "data_options", multiple=True, metavar="DATASET.KEY=VALUE",
                  help="Option for a dataset's open(), e.g. synth-vox.identities=1000 (repeatable)."),
    click.option("--lr", type=float, default=None, help="Learning rate (method default otherwise)."),
    click.option("--batch-size", type=int, default=None, help="Windows per step (method default otherwise)."),
    click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any other method setting, e.g. --set optimizer=adam."),
    click.option("--out", type=click.Path(path_type=Path), default=Path("ssfbench-out"), show_default=True, help="Output folder."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N]."),
    click.option("--workers", default="auto", show_default=True, help="DataLoader worker processes, or auto (CUDA: up to 8 per GPU; CPU: 0 on machines with at most 4 cores, else 2)."),
    click.option("--overwrite", type=click.Choice(["only-missing", "always", "never"]), default="only-missing", show_default=True, help="Embedding caches: reuse a matching one (recomputing a mismatched one with a warning), always recompute, or refuse a mismatch."),
    click.option("--resume/--fresh", default=True, show_default=True, help="--resume: continue an interrupted run from the last.pt in its run folder, and an interrupted embedding from its partial cache (the default: rerunning the same command resumes). --fresh: discard this run's checkpoints and pretrain from scratch."),
    click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True, help="Also write the resume state (last.pt) every N pretraining steps; 0: at epoch ends and every 10 minutes. Never changes the numbers."),
    click.option("--embed-batch-size", type=click.IntRange(min=1), default=256, hidden=True, help="Rows per embedding batch and resumable cache block."),
    click.option("--init-control/--no-init-control", default=True, show_default=True, help="run: also score a pretrained method at its own initialisation (the same run at --steps 0, BatchNorm statistics re-estimated like the random floor's), the paired control `compare` measures its gain against."),
    click.option("--quiet", is_flag=True, help="No progress bars."),
    click.option("--check-sync-every", type=click.IntRange(min=0), default=0, hidden=True, help="Under torchrun: also compare the ranks' parameters every N pretraining steps (always at epoch ends)."),
]


def run_options(command):
    """Decorate ``command`` with every option of :data:`_RUN_OPTIONS`."""
    for option in reversed(_RUN_OPTIONS):
        command = option(command)
    return command


_ENSEMBLE_OPTION = click.option(
    "--ensemble/--no-ensemble", default=True, show_default=True,
    help="With several --k: also evaluate the concatenation of their embeddings as one row ('Ranking Ensemble', variant k=1+2+4).")


@cli.command()
@run_options
@_ENSEMBLE_OPTION
def run(**options) -> None:
    """Pretrain (or load) an encoder, embed, probe, print the per-label tables and update the
    leaderboards. With no dataset options it runs the embedded synthetic benchmark.

    \b
    Ensemble (the paper's "Ranking Ensemble"):
      ssfbench run --method ranking --k 1 2 4
    trains (or reuses, same settings = same run) the k=1, k=2 and k=4 encoders, then evaluates the
    concatenation of their cached embeddings as one more row, variant "k=1+2+4" (per seed).

    \b
    Interrupted runs (killed, pre-empted, Ctrl-C): rerun the same command. Pretraining continues
    from runs/<run_id>/last.pt and embedding from the partial cache, and the outputs are the same
    as an uninterrupted run's (bitwise on CPU). --fresh starts pretraining over.

    \b
    Several processes (GPUs or machines): torchrun --nproc_per_node=N -m ssfbench run ...
    """
    execute(None, **options)


@cli.command()
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


@cli.command()
@run_options
def embed(**options) -> None:
    """Pretrain (or reuse) a run's encoder and write its HDF5 embedding caches of --datasets; no probe.

    \b
    Under torchrun the batches are shared out over the processes and rank 0 writes one cache,
    the same as a single process writes:
      torchrun --nproc_per_node=4 -m ssfbench embed --method ranking --k 2 --datasets bp4d --root bp4d=PATH
    """
    execute("embed", **options)


@cli.command()
@run_options
@_ENSEMBLE_OPTION
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


def execute(stop_after: str | None, *, method_name: str, ks: tuple[int, ...], steps: int | None, epochs: int | None,
            image_size: int, backbone: str, pretrained: str | None, weights: Path | None, seed: int,
            seeds: tuple[int, ...], datasets: tuple[str, ...], roots: tuple[str, ...], pretrain_data: str,
            data_options: tuple[str, ...], lr: float | None, batch_size: int | None, settings: tuple[str, ...],
            out: Path, device: str, workers: str, overwrite: str, quiet: bool, ensemble: bool = False,
            resume: bool = True, checkpoint_every: int = 0, embed_batch_size: int = 256,
            check_sync_every: int = 0, reuse_only: bool = False, init_control: bool = True) -> None:
    """``run`` (``stop_after`` None), ``pretrain`` or ``embed`` with the parsed options;
    ``probe`` is ``run`` with ``reuse_only``."""
    from ssfbench import distributed
    from ssfbench.metrics import NoPositivesWarning
    from ssfbench.runner import DEFAULT_EVAL_DATASETS, DEFAULT_STEPS, RunSpec
    from ssfbench.runner import ensemble as run_ensemble
    from ssfbench.runner import run as run_spec

    if any(k < 1 for k in ks):
        raise UserError(f"--k must be >= 1, got {min(ks)}")
    if reuse_only and (not resume or overwrite == "always"):
        raise UserError(f"{'--fresh' if not resume else '--overwrite always'}: probe never pretrains or embeds; "
                        "give it to `ssfbench pretrain` / `ssfbench embed`")
    num_workers = parse_workers(workers, device)
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
                   weights=weights, steps=spec_steps,
                   datasets=() if stop_after == "pretrain" else tuple(datasets) or DEFAULT_EVAL_DATASETS,
                   roots=parse_roots(roots), dataset_options=parse_data_options(data_options),
                   pretrain_data=pretrain_data, out=out, device=device,
                   num_workers=num_workers, overwrite=overwrite, progress=not quiet, resume=resume,
                   checkpoint_every=checkpoint_every, embed_batch_size=embed_batch_size, argv=invocation(),
                   stop_after=stop_after, sync_check_every=check_sync_every, reuse_only=reuse_only,
                   init_control=init_control)
    members: dict[int, list] = {}  # seed -> RunOutput per k
    for k in tuple(dict.fromkeys(ks)) or (None,):
        for s in seeds or (seed,):
            spec_overrides = dict(overrides) if k is None else {**overrides, "k": k}
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
    distributed.shutdown()


def invocation() -> tuple[str, ...]:
    """The command line of this invocation (as given to :func:`main`, else ``sys.argv``)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict) and "argv" in obj:
        return tuple(obj["argv"])
    return ("ssfbench", *sys.argv[1:])


def epochs_to_steps(spec, epochs: int) -> int:
    """Steps that make ``epochs`` passes over the pretraining videos' training split."""
    from ssfbench.pretrain import split_videos
    from ssfbench.runner import build_method, open_dataset

    method = build_method(spec)
    videos = open_dataset(spec.pretrain_data, spec)
    n_train = len(split_videos(len(videos), 0.2, spec.seed)[0])
    return epochs * max(1, n_train // method.config.batch_size)


def print_stage(output) -> None:
    """What ``pretrain`` / ``embed`` produced (a :class:`~ssfbench.records.RunOutput`): the
    checkpoint, then one cache per dataset."""
    click.echo(f"checkpoint: {output.checkpoint or output.run_id} (sha256 {output.checkpoint_sha256[:12]})")
    for dataset, cache in output.caches.items():
        click.echo(f"embeddings of {dataset}: {cache}")


def print_results(results: list, out: Path) -> None:
    """Print, per dataset, this run's per-label scores (:class:`~ssfbench.records.Result`) among every
    row of that leaderboard."""
    from ssfbench.layout import OutputLayout
    from ssfbench.results import read_leaderboard
    from ssfbench.tables import METRIC_NAMES, leaderboard_table

    layout = OutputLayout(out)
    for result in results:
        board = read_leaderboard(layout.results.leaderboard(result["dataset"]))
        metric = METRIC_NAMES[result["metric"]]
        click.echo(f"\n{result['dataset']}: per-label {metric} x100, mean over {len(result['scores_per_fold'])} "
                   f"fold(s); avg = mean over labels, ± = std over folds (or seeds); * = this run")
        click.echo(leaderboard_table(board, result["labels"], highlight=result["config_hash"]))
        path = layout.results.result(result["run_id"], result["dataset"])
        click.echo(f"results: {path}")
        notes = result.get("warnings") or []
        if notes:
            click.echo(f"warning: {result['dataset']}: {len(notes)} fold/label scores without positives "
                       f"(recorded under 'warnings' in {path.name}), e.g. {notes[0]}", err=True)


@cli.group()
def synth() -> None:
    """The embedded synthetic benchmark (procedural talking faces with known AU intensities)."""


@synth.command("preview")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--videos", type=int, default=6, show_default=True, help="Rows: synth-vox videos.")
@click.option("--times", type=int, default=10, show_default=True, help="Columns: frames over time.")
@click.option("--stride", type=int, default=5, show_default=True, help="Frames between columns (25 fps).")
@click.option("--image-size", type=int, default=96, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth_preview(out: Path, videos: int, times: int, stride: int, image_size: int, seed: int) -> None:
    """Write a grid of synthetic faces over time (rows = videos) so a person can look at the data."""
    from ssfbench.datasets.synthetic import preview_grid

    if out.parent and not out.parent.exists():
        raise UserError(f"{out.parent}: folder does not exist")
    path = preview_grid(out, videos=videos, times=times, image_size=image_size, seed=seed, stride=stride)
    click.echo(f"wrote {path}")


@synth.command("calibrate")
@click.option("--datasets", multiple=True, help="Synthetic labelled datasets (default: synth-au synth-expr).")
@click.option("--image-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Probe seed.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("ssfbench-out"), show_default=True)
def synth_calibrate(datasets: tuple[str, ...], image_size: int, seed: int, out: Path) -> None:
    """Measure the benchmark's ceiling: the probe on the true AU intensities. Compare it with
    `ssfbench run --method pixels` and `--method random` (the floors)."""
    from ssfbench.runner import DEFAULT_EVAL_DATASETS, RunSpec, calibrate

    spec = RunSpec(method="random", datasets=tuple(datasets) or DEFAULT_EVAL_DATASETS, image_size=image_size,
                   seed=seed, out=out)
    print_results(calibrate(spec), out)


@synth.command("audit")
@click.option("--pretrain-data", default="synth-vox", show_default=True, help="Video dataset whose held-out windows are audited.")
@click.option("--root", "roots", multiple=True, help="NAME=PATH of a dataset's local copy (real video datasets: raw pixels only).")
@click.option("--data-option", "data_options", multiple=True, metavar="DATASET.KEY=VALUE",
              help="Dataset option, e.g. synth-vox.pose_drift=false or synth-vox.speech=false (repeatable).")
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, help="Intervals k, space-separated (default: 1 2 4).")
@click.option("--n", type=click.IntRange(min=1), default=10, show_default=True, help="Frames after the sibling (the paper's N).")
@click.option("--windows-per-video", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeded windows per held-out video.")
@click.option("--image-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the video split and the windows.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
def synth_audit(pretrain_data: str, roots: tuple[str, ...], data_options: tuple[str, ...], ks: tuple[int, ...], n: int,
                windows_per_video: int, image_size: int, seed: int, fmt: str) -> None:
    """The pretext audit: ranking accuracy of held-out pretraining windows ordered by one factor
    alone (head pose, lighting, eyes, true AU intensities, raw pixels). A nuisance factor that
    ranks as well as the AUs can solve the ranking pretext without encoding facial action."""
    from ssfbench.audit import pretext_audit
    from ssfbench.runner import RunSpec, open_dataset

    spec = RunSpec(method="random", image_size=image_size, data_seed=0, roots=parse_roots(roots),
                   dataset_options=parse_data_options(data_options))
    videos = open_dataset(pretrain_data, spec)
    frame = 100 * pretext_audit(videos, ks or (1, 2, 4), n=n, per_video=windows_per_video, seed=seed)
    if fmt == "csv":
        click.echo(frame.to_csv(float_format="%.1f"))
        return
    options = " ".join(data_options) or "default options"
    click.echo(f"pretext audit: held-out ranking accuracy x100 on {pretrain_data} ({options}; N={n}, "
               f"{windows_per_video} windows per held-out video, seed {seed}); ties count half, chance = 50")
    click.echo(frame.to_markdown(floatfmt=".1f"))


@cli.command("list")
@click.argument("what", type=click.Choice(["methods", "datasets", "backbones"]))
@click.option("--filter", "pattern", default="*", help="Backbones: a timm wildcard, e.g. 'resnet*'.")
def list_cmd(what: str, pattern: str) -> None:
    """Show what is installed: methods, datasets (with their origin) or timm backbones."""
    from tabulate import tabulate

    if what == "backbones":
        import timm

        names = timm.list_models(pattern)
        click.echo("\n".join(names))
        click.echo(f"({len(names)} timm models; any of them works with --backbone)")
        return
    from ssfbench.registry import DATASETS, METHODS

    registry = METHODS if what == "methods" else DATASETS
    click.echo(tabulate(registry.describe(), headers=["name", "summary", "from"], tablefmt="plain"))


# ---- commands defined in their own modules (one add_command line each) ----------------------
from ssfbench.mockrun import mock_run_cmd  # noqa: E402

cli.add_command(mock_run_cmd)
from ssfbench.cli_report import compare_cmd, retrieve_cmd  # noqa: E402

cli.add_command(compare_cmd)
cli.add_command(retrieve_cmd)
from ssfbench.cli_datasets import datasets as datasets_group  # noqa: E402

cli.add_command(datasets_group)
from ssfbench.cli_bench import bench_cmd  # noqa: E402

cli.add_command(bench_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expand list options, run click, turn UserError into one line + exit 2."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = expand_list_options(given)
    try:
        cli.main(args=args, prog_name="ssfbench", standalone_mode=False, obj={"argv": ["ssfbench", *given]})
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
