"""``ssfbench faces``: face detection and alignment on your own photos, with the code that prepares
the real datasets' faces (dlib's detector and 68 landmarks, similarity alignment to the template).

    ssfbench faces align photos/ --out aligned/ --image-size 256 --preview aligned/grid.png
"""

from __future__ import annotations

from pathlib import Path

import click

from ssfbench.errors import UserError


@click.group("faces")
def faces() -> None:
    """Detect and align faces (needs the optional extra: pip install 'ssfbench[faces]')."""


@faces.command("align")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="IMAGE_OR_DIR...")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the crops (<stem>-0.png, <stem>-1.png, ... largest face first) and faces.json.")
@click.option("--image-size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Side of each aligned square crop (the paper: 256).")
@click.option("--margin", type=click.FloatRange(min=0.0, max=4.0), default=0.0, show_default=True,
              help="Context around the template: the template shrinks by 1/(1+margin) about the centre.")
@click.option("--preview", type=click.Path(path_type=Path), default=None,
              help="Also write a PNG grid of the crops (the template's eye line drawn in green).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def align_cmd(inputs: tuple[Path, ...], out: Path, image_size: int, margin: float, preview: Path | None,
              quiet: bool) -> None:
    """Find every face in the images (files or folders), align each on its 68 landmarks and write
    one crop per face plus OUT/faces.json (box, landmarks, source->crop matrix per face). Images
    without a face, and unreadable images (skipped), are named on stderr; exit 2 when no image had
    a face. Files inside OUT are never inputs."""
    from ssfbench.faces.photos import align_faces, preview_grid

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    report = align_faces(inputs, out, image_size=image_size, margin=margin, progress=not quiet)
    for path in report.without_face:
        click.echo(f"no face: {path}", err=True)
    for path, why in report.unreadable:
        click.echo(f"warning: {path}: skipped, {why}", err=True)
    n_images = len(report.index["images"])
    if not report.crops:
        raise UserError(f"no face found in any of the {n_images} input image(s)"
                        + (f" ({len(report.unreadable)} unreadable)" if report.unreadable else "")
                        + "; dlib's frontal detector misses faces smaller than about 40 px "
                          f"({out}/faces.json lists them)")
    with_face = n_images - len(report.without_face) - len(report.unreadable)
    skipped = f", {len(report.unreadable)} unreadable skipped" if report.unreadable else ""
    click.echo(f"{len(report.crops)} face(s) from {with_face} of {n_images} image(s){skipped} -> {out}/ (faces.json)")
    if preview is not None:
        click.echo(f"wrote {preview_grid(report.crops, preview)}")
