"""``ssfbench bench``: the speed measurements of :mod:`ssfbench.bench.speed` as one command, on CPU or
on a GPU (``--device cuda``), printed as a table and written as JSON for BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import click

from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_json


def _cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(device: str) -> dict[str, object]:
    """What the numbers were measured on."""
    import torch

    from ssfbench.runtime.device import resolve_device

    resolved = resolve_device(device)
    return {"device": str(resolved),
            "device_name": torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else _cpu_name(),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@click.command("bench")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--image-size", type=click.IntRange(min=16), default=64, show_default=True, help="Encoder input size.")
@click.option("--steps", type=click.IntRange(min=8), default=40, show_default=True,
              help="Pretraining steps per measured loop (the first epoch is warm-up and not counted).")
@click.option("--embed-batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--workers", default="auto", show_default=True, help="DataLoader workers (as for run).")
@click.option("--identities", type=click.IntRange(min=5), default=100, show_default=True,
              help="synth-vox identities in the pretraining stores (2 videos each).")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Also time the probe against scikit-learn on 150,000 x 256 embeddings (minutes on a CPU).")
@click.option("--probe-rows", type=click.IntRange(min=300), default=150_000, hidden=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Alternating measurements of each pipeline and its reference; ratios of the medians.")
@click.option("--render/--no-render", default=True, show_default=True,
              help="Also time pretraining from the on-the-fly renderer.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("ssfbench-out/bench-data"), show_default=True,
              help="Where the prepared stores the benchmark reads are written (once) and reused.")
@click.option("--suite", type=click.Choice(["pipeline", "voxceleb2", "all"]), default="pipeline", show_default=True,
              help="pipeline: the rows above; voxceleb2: reading VoxCeleb2-layout H.264 at 224 px per core, old and "
                   "new reader, against the encoder's training rate at 224 px (BENCHMARKS.md, VoxCeleb2 from mp4; "
                   "writes 16 clips into --data-dir once); all: both.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the rows as JSON here.")
def bench_cmd(device: str, image_size: int, steps: int, embed_batch_size: int, workers: str, identities: int,
              probe: bool, probe_rows: int, rounds: int, render: bool, data_dir: Path, suite: str,
              out: Path | None) -> None:
    """Measure the data pipeline against the model's own speed, in one run: embedding (JPEG store
    to HDF5 cache) vs the encoder's forward pass, pretraining vs forward+backward on preloaded
    windows, the synthetic renderer vs what training consumes, the linear probe vs scikit-learn,
    and (--suite voxceleb2 or all) reading VoxCeleb2 from mp4 per core. For a GPU machine:
    ssfbench bench --device cuda --out gpu.json
    """
    from tabulate import tabulate

    from ssfbench.bench.speed import run_suite
    from ssfbench.runtime.device import resolve_workers

    num_workers = resolve_workers(workers, device)
    env = _environment(device)
    click.echo(f"device {env['device']} ({env['device_name']}), {env['cores']} cores, "
               f"{env['torch_threads']} torch threads, workers {num_workers}", err=True)
    say = lambda msg: click.echo(f"... {msg}", err=True)  # noqa: E731
    rows = []
    if suite in ("all", "pipeline"):
        rows += run_suite(device=device, image_size=image_size, embed_batch_size=embed_batch_size, steps=steps,
                          num_workers=num_workers, identities=identities, folder=data_dir, probe=probe,
                          render=render, probe_rows=probe_rows, rounds=rounds, progress=say)
    if suite in ("all", "voxceleb2"):
        from ssfbench.bench.decode_speed import voxceleb2_rows

        rows += voxceleb2_rows(data_dir, device=device, rounds=rounds, progress=say)
    table = [[r["what"], f"{r['pipeline']:.1f}", f"{r['reference']:.1f}", f"{r['ratio']:.3f}",
              "" if r["target"] is None else (("met" if r["ratio"] >= r["target"] else "MISSED") + f" (>= {r['target']})"),
              r["unit"]] for r in rows]
    click.echo(tabulate(table, headers=["measurement", "pipeline", "reference", "ratio", "target", "unit"]))
    for r in rows:
        if "end_to_end" in r:
            click.echo(f"{r['what'].split(' vs ')[0]}: end to end (validation and checkpoints included) "
                       f"{r['end_to_end']:.1f} frames/s, {r['end_to_end_ratio']:.3f} of the model's")
        if "decoded_per_used" in r:
            click.echo(f"{r['what']}: {r['frames_per_s']:.0f} frames/s per core, {r['decoded_per_used']:.2f} decoded "
                       f"frames per used frame, {r['cores_per_gpu']:.1f} cores per GPU ({r['gpu_rate']})")
        if "cores_for_this_model" in r:
            click.echo(f"this model on {env['device']} needs {r['cores_for_this_model']:.3f} cores of the default "
                       f"reader ({r['cores_for_this_model_before']:.3f} with one window per visit)")
        if "probe_f1" in r:
            click.echo(f"probe mean F1 {r['probe_f1']:.2f}, sklearn {r['sklearn_f1']:.2f} "
                       f"(difference {r['probe_f1'] - r['sklearn_f1']:+.2f} points)")
    if out is not None:
        try:
            atomic_write_json(out, {"environment": env, "workers": num_workers, "image_size": image_size,
                                    "steps": steps, "suite": suite, "rows": rows})
        except OSError as exc:
            raise UserError(f"{out}: cannot write ({exc.strerror})") from None
        click.echo(f"wrote {out}")
