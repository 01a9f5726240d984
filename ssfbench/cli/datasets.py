"""``ssfbench datasets``: check a local copy of a real dataset (``verify``) and optionally extract
its face crops into an HDF5 store that later runs read instead (``prepare``).

    ssfbench datasets verify bp4d --root /data/BP4D
    ssfbench datasets verify disfa --root /data/DISFA --set camera=right --all
    ssfbench datasets prepare bp4d --root /data/BP4D --out bp4d-256.h5
    ssfbench run --method random --datasets bp4d --root bp4d=bp4d-256.h5
    ssfbench run --method random --datasets bp4d --root bp4d=/data/BP4D --data-option bp4d.frame_offset=1

``verify`` exits 0 when the copy is usable and 2 (after printing every reason) when it is not.
"""

from __future__ import annotations

from pathlib import Path

import click

from ssfbench.cli.options import parse_settings
from ssfbench.errors import UserError

_ROOT = click.option("--root", type=click.Path(path_type=Path), required=True,
                     help="Folder of your copy, in the layout the owners ship.")
_SET = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                    help="Adapter option, e.g. frame_offset=1 (bp4d), camera=right (disfa), split=manual-only "
                         "(emotionet), partial=true (bp4d, disfa); `ssfbench run` takes the same ones as "
                         "--data-option NAME.KEY=VALUE.")


@click.group("datasets")
def datasets() -> None:
    """Check and prepare local copies of the real datasets (bp4d, disfa, emotionet, affectnet, voxceleb2)."""


@datasets.command("verify")
@click.argument("name")
@_ROOT
@_SET
@click.option("--quick", is_flag=True, help="Read labels and list files only; decode no image or video.")
@click.option("--sample", type=int, default=None,
              help="Decode only N randomly chosen images/videos (default: all; voxceleb2: 200; 0 = all).")
@click.option("--all", "show_all", is_flag=True, help="List every problem, not the first 10 of each kind.")
def verify_cmd(name: str, root: Path, settings: tuple[str, ...], quick: bool, sample: int | None,
               show_all: bool) -> None:
    """Check the copy of NAME at --root without training anything: count subjects, frames and labels
    per label (positive / negative / unknown), list missing or unreadable files and malformed rows.
    Exit 0 when usable, 2 with every reason when not."""
    from ssfbench.api.verify import verify

    if sample is not None and sample < 0:
        raise UserError(f"--sample must be >= 0, got {sample}")
    report = verify(name, root, options=parse_settings(settings), quick=quick, sample=sample)
    click.echo(report.render(limit=None if show_all else 10))
    if not report.usable:
        raise UserError(f"{name}: the copy at {root} is not usable ({report.problems.count('error')} error(s) "
                        f"listed above)")


@datasets.command("prepare")
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Folder of your copy, in the layout the owners ship (not for synth-vox).")
@_SET
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Store to write (default: <name>-<size>.h5 here; voxceleb2: <name>-index.h5). Only a "
                   "store of ssfbench is replaced; never inside --root.")
@click.option("--image-size", type=int, default=256, show_default=True, help="Side of the stored face crops.")
@click.option("--codec", type=click.Choice(["jpeg", "raw"]), default=None,
              help="jpeg (quality 95, compact; the default for face crops) or raw uint8 (lossless; video stores).")
def prepare_cmd(name: str, root: Path | None, settings: tuple[str, ...], out: Path | None, image_size: int,
                codec: str | None) -> None:
    """Decode and crop every frame of NAME once into an HDF5 store (written atomically); later runs
    read it with --root NAME=STORE.h5. For voxceleb2 the store is an index of videos and frame counts.

    \b
    synth-vox: every frame rendered once (lossless), so pretraining reads instead of rendering:
      ssfbench datasets prepare synth-vox --image-size 64 --out synth-vox-64.h5
      ssfbench run --method ranking --k 2 --root synth-vox=synth-vox-64.h5
    """
    from ssfbench.api.verify import prepare

    if image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {image_size}")
    if out is None:
        out = Path(f"{name}-index.h5" if name == "voxceleb2" else f"{name}-{image_size}.h5")
    path = prepare(name, root, out, image_size=image_size, codec=codec, options=parse_settings(settings))
    click.echo(f"wrote {path}; use it with --root {name}={path}")
