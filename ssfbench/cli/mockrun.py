"""``ssfbench mock-run``: print the contract check of :func:`ssfbench.pipeline.mockrun.mock_run` for a
method, one PASS/FAIL/SKIP line per check; exit code 0 when nothing failed, 2 otherwise."""

from __future__ import annotations

import click

from ssfbench.cli.options import trust_weights_option


@click.command("mock-run")
@click.option("--method", "method_name", required=True, help="Registered method name (built-in or plugin).")
@click.option("--backbone", default="resnet18", show_default=True, help="Any timm model name.")
@click.option("--image-size", type=int, default=32, show_default=True, help="Input size of the tiny run.")
@click.option("--steps", type=int, default=2, show_default=True, help="Training steps of the tiny run.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Check the method with this setting instead of its default (repeatable), as `run --set` takes it.")
@trust_weights_option("the weight files the check reads (its checkpoint round trip, files a setting names)")
def mock_run_cmd(method_name: str, backbone: str, image_size: int, steps: int, seed: int,
                 settings: tuple[str, ...]) -> None:
    """Check a method against the contract in about a minute on tiny synthetic data (CPU): it
    instantiates with defaults, embeds ([B, embed_dim] float32, finite), is deterministic and
    batch-independent in eval mode, leaves weights and BatchNorm statistics alone while embedding,
    trains a few steps with a finite loss, survives a checkpoint round trip and feeds the probe.
    One PASS/FAIL/SKIP/WARN line per check (a WARN also as a `warning:` line on stderr: e.g. an
    embedding that is the same for every image); exit code 0 when nothing failed, 2 otherwise."""
    from ssfbench.cli.options import parse_settings
    from ssfbench.pipeline.mockrun import mock_run

    report = mock_run(method_name, backbone=backbone, image_size=image_size, steps=steps, seed=seed,
                      settings=parse_settings(settings))
    for line in report.lines():
        click.echo(line)
    for check in report.warnings:
        click.echo(f"warning: {check.detail}", err=True)
    if not report.ok:
        raise SystemExit(2)
