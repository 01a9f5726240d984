"""``ssfbench synth``: look at the embedded synthetic benchmark (``preview``), measure its ceiling
(``calibrate``) and audit its pretext task for nuisance shortcuts (``audit``)."""

from __future__ import annotations

from pathlib import Path

import click

from ssfbench.cli.options import parse_data_options, parse_roots
from ssfbench.cli.printing import print_results
from ssfbench.errors import UserError


@click.group()
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
    from ssfbench.datasets._synth_preview import preview_grid

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
    from ssfbench.pipeline.ensemble import calibrate
    from ssfbench.pipeline.spec import DEFAULT_EVAL_DATASETS, RunSpec

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
    from ssfbench.pipeline.spec import RunSpec, open_dataset
    from ssfbench.report.audit import pretext_audit

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
