"""``ssfbench weights convert FILE --out FILE.safetensors``: a one-time, code-free copy of a weights file.

A ``.pt``/``.pth`` that holds pickled Python objects (a model object, training options) is refused by
every command unless ``--trust-weights`` is given (:mod:`ssfbench.runtime.safeload`). Converting it once,
itself behind ``--trust-weights``, writes its tensors and plain data as ``.safetensors``, which every
command then reads with no flag; ``--weights``, ``--pretrained`` and checkpoints accept either form.
"""

from __future__ import annotations

from pathlib import Path

import click

from ssfbench.errors import UserError


@click.group("weights")
def weights() -> None:
    """Weight files: convert a pickled .pt/.pth into a .safetensors file that runs no code."""


@weights.command("convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, metavar="FILE.safetensors",
              help="Where to write the converted file (a .safetensors name).")
@click.option("--trust-weights", is_flag=True,
              help="Let SOURCE create the pickled Python objects it holds (this can run any code): only "
                   "for a file from a source you trust. A file of plain tensors converts without it.")
def convert(source: Path, out: Path, trust_weights: bool) -> None:
    """Write SOURCE's tensors and plain data (nesting, numbers, strings, an ssfbench checkpoint's
    record) to OUT (.safetensors); a pickled model object becomes its state_dict. Entries that are
    neither (e.g. an optimizer object) are left out, each named in one warning line."""
    from ssfbench.runtime.safeload import SAFETENSORS_SUFFIX, read_torch_file, trusting, write_safetensors

    if out.suffix != SAFETENSORS_SUFFIX:
        raise UserError(f"--out: expected a {SAFETENSORS_SUFFIX} file name, got {out}")
    if out.resolve() == source.resolve():
        raise UserError(f"--out: {out} is the file being converted; give another name")
    if out.is_dir():
        raise UserError(f"--out: {out} is a folder; give a file name")
    with trusting(trust_weights):
        payload = read_torch_file(source, "weights file")
    dropped = write_safetensors(payload, out)
    if dropped:
        click.echo(f"warning: {source}: left out of {out} (neither tensors nor plain data): {', '.join(dropped)}",
                   err=True)
    click.echo(f"wrote {out}: use it with --weights / --pretrained; it runs no code when read")


__all__ = ["weights"]
