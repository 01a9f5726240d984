"""``ssfbench list``: what is installed (methods and datasets with their origin, timm backbones, recipes)."""

from __future__ import annotations

import click


@click.command("list")
@click.argument("what", type=click.Choice(["methods", "datasets", "backbones", "recipes"]))
@click.option("--filter", "pattern", default="*", help="Backbones: a timm wildcard, e.g. 'resnet*'.")
def list_cmd(what: str, pattern: str) -> None:
    """Show what is installed: methods, datasets (with their origin), timm backbones or recipes
    (`--recipe NAME`)."""
    from tabulate import tabulate

    if what == "recipes":
        from ssfbench.pipeline import recipe

        click.echo(tabulate(recipe.describe(), headers=["name", "summary"], tablefmt="plain"))
        return

    if what == "backbones":
        import timm

        names = timm.list_models(pattern)
        click.echo("\n".join(names))
        click.echo(f"({len(names)} timm models; any of them works with --backbone)")
        return
    from ssfbench.api.registry import DATASETS, METHODS

    registry = METHODS if what == "methods" else DATASETS
    click.echo(tabulate(registry.describe(), headers=["name", "summary", "from"], tablefmt="plain"))
