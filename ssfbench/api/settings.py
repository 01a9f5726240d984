"""Typed settings from the command line: the one caster, and the options datasets declare.

Every ``KEY=VALUE`` a user types reaches the harness through :func:`cast`: a method's settings
(``--set``, :meth:`ssfbench.api.method.MethodConfig.replace`) and a dataset's options
(``--data-option NAME.KEY=VALUE``, ``datasets verify|prepare --set``). A dataset declares its
options once, as ``OPTIONS = {"name": Option(type, default, help[, choices])}`` on its class, and
:func:`resolve_options` validates what it is given against that declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssfbench.errors import UserError

#: words :func:`cast` reads as a bool (any case, surrounding blanks ignored)
TRUE_WORDS: tuple[str, ...] = ("true", "1", "yes", "on")
FALSE_WORDS: tuple[str, ...] = ("false", "0", "no", "off")
_KIND_WORDS = {int: "an integer", float: "a number", str: "text"}


@dataclass(frozen=True)
class Option:
    """One option of a dataset (``--data-option NAME.KEY=VALUE``; a keyword of the dataset's
    ``open``): its type, default, a one-line help and, optionally, the values allowed."""

    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


def cast(value: Any, kind: type) -> Any:
    """``value`` (text from the command line, or an already parsed value) as a ``kind``. Bools
    read true/false/1/0/yes/no (also on/off) from text and ``bool(value)`` otherwise; other kinds
    are ``kind(value)``. A value that does not fit is a ``ValueError`` saying what was expected."""
    if kind is bool:
        if isinstance(value, str):
            word = value.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {_KIND_WORDS.get(kind, kind.__name__)}, got {value!r}") from None


def cast_like(value: Any, default: Any) -> Any:
    """``value`` cast to the type of ``default`` (a field's default) when that is a bool, int,
    float or str; other values are returned unchanged."""
    if isinstance(default, (bool, int, float, str)):
        return cast(value, type(default))
    return value


def _shown(value: Any) -> str:
    """A default as a user would type it (bools lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve_options(dataset: str, declared: Mapping[str, Option], given: Mapping[str, Any], *,
                    defaults: bool = True, source: str = "") -> dict[str, Any]:
    """``given`` (keys with ``-`` or ``_``) validated against ``declared`` and cast to the declared
    types, on top of every declared default (``defaults=False``: the given options alone). An unknown
    option or a bad value is a one-line :class:`UserError` naming the dataset, the option and what
    was expected, prefixed by ``source`` (e.g. ``"--data-option: "``); the unknown-option error lists
    the declared options with their defaults."""
    out = {key: option.default for key, option in declared.items()} if defaults else {}
    for raw_key, value in given.items():
        key = raw_key.replace("-", "_")
        option = declared.get(key)
        if option is None:
            known = ", ".join(f"{k}={_shown(o.default)}" + (f" ({'|'.join(map(str, o.choices))})" if o.choices else "")
                              for k, o in declared.items()) or "none"
            raise UserError(f"{source}dataset {dataset!r} has no option {key!r} (options: {known})")
        try:
            value = cast(value, option.type)
        except ValueError as exc:
            raise UserError(f"{source}dataset {dataset!r}: option {key}: {exc}") from None
        if option.choices is not None and value not in option.choices:
            raise UserError(f"{source}dataset {dataset!r}: option {key}: expected one of "
                            f"{', '.join(map(str, option.choices))}, got {value!r}")
        out[key] = value
    return out


__all__ = ["Option", "cast", "cast_like", "resolve_options", "TRUE_WORDS", "FALSE_WORDS"]
