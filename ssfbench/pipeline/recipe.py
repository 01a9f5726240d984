"""Recipes: named sets of run options and method settings, shipped as TOML files in the package
(``ssfbench/recipes/<name>.toml``), applied with ``--recipe NAME`` and listed by ``ssfbench list recipes``.

A recipe file holds ``summary`` (one line), ``method`` (the method it is for), ``[options]`` (options
of ``ssfbench run`` by their command-line names: ``image-size = 256``) and ``[settings]`` (method
settings, as ``--set KEY=VALUE`` gives them). Applied to a command (:func:`apply`), every value the
command line (or a ``--config`` file) does not give explicitly is set; an explicit option or
``--set KEY`` wins and is recorded as an override (an explicit ``--steps`` replaces the recipe's
``epochs``).

Settings are named by their flat key: an option's name with underscores (``image_size``,
``pretrain_data``, ``batch_size``) or the method setting's name (``margin``, ``anchor``). Every
result whose encoder ssfbench pretrained carries :func:`result_record`::

    "recipe": {"name": "paper" | null,
               "settings": {key: value the recipe applied},
               "overrides": {key: value given explicitly that replaced a recipe value},
               "deviations": {key: {"run": value, "paper": value}}}

``deviations`` lists every pretraining setting of the run that differs from the ``paper`` recipe
(:data:`PAPER`, whose file is the one owner of the paper's values); a faithful ``--recipe paper``
run has none.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssfbench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the conditional dependency tomli)
    import tomli as tomllib

#: where the shipped recipes are (package data)
RECIPES_DIR = Path(__file__).parent / "recipes"
#: the recipe of the released training code; deviations are measured against it
PAPER = "paper"
#: run options a recipe may not set (they name the run's identity or machinery, not its recipe)
NOT_RECIPE_OPTIONS = ("method", "recipe", "config", "set", "seed", "seeds", "k", "datasets", "root", "out",
                      "device", "workers", "weights")


@dataclass(frozen=True)
class Recipe:
    """One recipe file: its name, one-line summary, the method it is for, its run options (command-line
    names, dashes) and its method settings."""

    name: str
    summary: str
    method: str
    options: dict[str, Any]
    settings: dict[str, Any]
    path: Path

    def flat(self) -> dict[str, Any]:
        """Every value of the recipe by flat key (``method``, options with underscores, settings)."""
        return {"method": self.method, **{k.replace("-", "_"): v for k, v in self.options.items()}, **self.settings}


def names() -> list[str]:
    """The shipped recipes' names, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name or a malformed file is a one-line :class:`UserError`."""
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"--recipe: no recipe {name!r} (recipes: {', '.join(names()) or 'none'}; see "
                        "`ssfbench list recipes`)")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    options, settings = table.get("options", {}), table.get("settings", {})
    unknown = sorted(set(table) - {"summary", "method", "options", "settings"})
    if unknown or not isinstance(options, dict) or not isinstance(settings, dict) or not isinstance(table.get("method"), str):
        raise UserError(f"{path}: a recipe holds summary, method, [options] and [settings]"
                        + (f" (unexpected: {', '.join(unknown)})" if unknown else ""))
    barred = sorted(set(options) & set(NOT_RECIPE_OPTIONS))
    if barred:
        raise UserError(f"{path}: [options] may not set {', '.join(barred)}")
    return Recipe(name, str(table.get("summary", "")), table["method"], dict(options), dict(settings), path)


def describe() -> list[tuple[str, str]]:
    """``(name, summary)`` of every shipped recipe (``ssfbench list recipes``)."""
    return [(n, load(n).summary) for n in names()]


def _cast(given: Any, like: Any) -> Any:
    """An explicitly given value (text from ``--set``) typed like the recipe's value it replaced."""
    from ssfbench.api.settings import cast_like

    try:
        return cast_like(given, like)
    except ValueError:
        return given


def _text(value: Any) -> str:
    """A TOML value as ``--set`` text."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Applied:
    """What :func:`apply` decided: option values to set (parameter names -> values), ``--set`` pairs to
    put before the command line's own, and the record of what was applied and overridden."""

    options: dict[str, Any]
    settings: tuple[str, ...]
    record: dict[str, Any]


def apply(recipe: Recipe, method: str, options: Mapping[str, tuple[str, Any, bool]],
          given_settings: Mapping[str, str]) -> Applied:
    """Apply ``recipe`` to a command. ``options``: recipe option key (dashes) -> (parameter name, the
    command's value, whether it was given explicitly); ``given_settings``: the command's ``--set``
    pairs. Explicit values win and are recorded under ``overrides``; ``--set KEY`` also overrides a
    recipe option of that flat key (``--set lr=0.01``), and an explicit ``steps`` the recipe's
    ``epochs``. A recipe for another method is a :class:`UserError`."""
    if method != recipe.method:
        raise UserError(f"--recipe {recipe.name}: the recipe is for method {recipe.method!r}, not {method!r}")
    values, applied, overrides = {}, {}, {}
    for key, value in recipe.options.items():
        flat = key.replace("-", "_")
        if key not in options:
            raise UserError(f"{recipe.path}: [options]: {key!r} is not an option of `ssfbench run`")
        param, current, explicit = options[key]
        if explicit:
            overrides[flat] = current
        elif flat in given_settings:
            overrides[flat] = _cast(given_settings[flat], value)
        elif key == "epochs" and options.get("steps", ("", None, False))[2]:
            overrides["steps"] = options["steps"][1]
        else:
            values[param] = value
            applied[flat] = value
    pairs = []
    for key, value in recipe.settings.items():
        if key in given_settings:
            overrides[key] = _cast(given_settings[key], value)
        else:
            pairs.append(f"{key}={_text(value)}")
            applied[key] = value
    return Applied(values, tuple(pairs), {"name": recipe.name, "settings": applied, "overrides": overrides})


def _same(run: Any, paper: Any) -> bool:
    """Whether a run's value equals the recipe's (numbers to 1e-12 relative, text as text)."""
    if isinstance(run, (int, float)) and isinstance(paper, (int, float)) and not isinstance(run, bool):
        return math.isclose(float(run), float(paper), rel_tol=1e-12)
    return run == paper or (run is not None and str(run) == str(paper))


def deviations(run: Mapping[str, Any], reference: str = PAPER) -> dict[str, dict[str, Any]]:
    """``{key: {"run": value, "paper": value}}`` for every value of the ``reference`` recipe that the
    run's pretraining settings ``run`` (flat keys; a missing key is None) do not match."""
    out = {}
    for key, value in load(reference).flat().items():
        mine = run.get(key)
        if not _same(mine, value):
            out[key] = {"run": mine, "paper": value}
    return out


def pretraining_settings(*, method: str, config: Mapping[str, Any], backbone: str, pretrained: str | None,
                         pretrain_data: str, image_size: int, steps: int, epochs: int | None,
                         precision: str) -> dict[str, Any]:
    """A pretraining run's settings by flat key, for :func:`deviations`: the method, its config, the
    run options and the budget (``epochs``, or ``"<steps> steps"`` when the run was given steps)."""
    return {**dict(config), "method": method, "backbone": backbone, "pretrained": pretrained,
            "pretrain_data": pretrain_data, "image_size": image_size, "precision": precision,
            "epochs": epochs if epochs is not None else f"{steps} steps"}


def result_record(recipe: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``"recipe"`` key of a result whose encoder ssfbench pretrained: the applied recipe's record
    (``{"name", "settings", "overrides"}``, or None: no recipe) plus the ``deviations`` of the run's
    pretraining ``settings`` (:func:`pretraining_settings`) from the paper recipe."""
    recipe = recipe or {"name": None, "settings": {}, "overrides": {}}
    return {"name": recipe["name"], "settings": dict(recipe["settings"]), "overrides": dict(recipe["overrides"]),
            "deviations": deviations(settings)}


__all__ = ["Applied", "NOT_RECIPE_OPTIONS", "PAPER", "RECIPES_DIR", "Recipe", "apply", "describe", "deviations",
           "load", "names", "pretraining_settings", "result_record"]
