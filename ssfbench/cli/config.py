"""Run configuration files: ``ssfbench run --config run.toml`` and the TOML that reproduces a result.

A configuration is a TOML table whose keys are the long option names of ``ssfbench run`` without the
dashes (``method``, ``k``, ``steps``, ``image-size``, ``data-option``, ``set``, ...; ``image_size`` is
read as ``image-size``). Values are TOML values: an option given several times (``k``, ``seeds``,
``datasets``, ``set``, ``data-option``, ``root``) takes an array (one value is read as an array of
one), ``KEY=VALUE`` options take their ``"KEY=VALUE"`` strings, a flag takes ``true``/``false`` and a
flag pair takes either name (``resume = false`` is ``fresh = true``)::

    method = "ranking"
    k = [1, 2, 4]
    seeds = [0, 1, 2]
    data-option = ["synth-vox.identities=1000"]

The file's values become the command's defaults (click's ``default_map``), so every value is parsed
and checked exactly as the same flag would be, and an option also given on the command line wins. A
run started from a file therefore has the run id (and config hash) of the equivalent command line;
its results record that command line (:func:`recorded_argv`), never the file's name.

:func:`result_options` turns a results JSON back into the options of the command that made it (its
``rerun.argv``) and :func:`to_toml` prints them as a configuration: ``ssfbench rerun RESULT.json
--print-config``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ssfbench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the conditional dependency tomli)
    import tomli as tomllib

F = TypeVar("F", bound=Callable[..., object])

#: the commands whose recorded command lines :func:`result_options` reads back (all take run's options)
RUN_STAGES = ("run", "pretrain", "embed", "probe")


def option_keys(command: click.Command) -> dict[str, tuple[click.Option, bool]]:
    """Configuration key -> (the option, whether the key is its negative name) for every long option
    of ``command`` except ``--config`` and ``--help``."""
    keys: dict[str, tuple[click.Option, bool]] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("config", "help"):
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = (param, False)
        for opt in param.secondary_opts:
            if opt.startswith("--"):
                keys[opt[2:]] = (param, True)
    return keys


def read_config(path: Path) -> dict[str, Any]:
    """The table of a TOML file; an unreadable or invalid file is a one-line :class:`UserError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UserError(f"--config: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config: {path} is not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--config: {path} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8: "
                        "save it as UTF-8, not UTF-16") from None


def to_default_map(command: click.Command, options: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``options`` (configuration keys -> values) as ``command``'s ``default_map`` (parameter names ->
    values). An unknown key, an array for a single-valued option, a table, or a non-boolean flag is a
    one-line :class:`UserError` naming the key and ``source`` (the file)."""
    keys = option_keys(command)
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = key.replace("_", "-")
        if name not in keys:
            raise UserError(f"{source}: unknown key {key!r} (keys are the options of `ssfbench {command.name}`, "
                            f"see `ssfbench {command.name} --help`)")
        param, negated = keys[name]
        if isinstance(value, dict):
            raise UserError(f"{source}: key {key!r}: expected a value or an array, got a table")
        if param.is_flag or negated:
            if not isinstance(value, bool):
                raise UserError(f"{source}: key {key!r}: expected true or false, got {value!r}")
            value = not value if negated else value
        elif param.multiple:
            value = tuple(value) if isinstance(value, list) else (value,)
        elif isinstance(value, list):
            raise UserError(f"{source}: key {key!r}: --{name} takes one value, got an array")
        if isinstance(param.type, click.types.IntParamType):  # click would truncate 32.5 to 32
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, (bool, float)):
                    raise UserError(f"{source}: key {key!r}: --{name} takes an integer, got {item!r}")
        out[param.name] = value
    return out


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """``--config``'s eager callback: the file's values become the command's defaults."""
    if value is None or ctx.resilient_parsing:
        return
    ctx.default_map = {**(ctx.default_map or {}), **to_default_map(ctx.command, read_config(value), str(value))}


def config_option(command: F) -> F:
    """Add ``--config FILE.toml`` to a command that takes ``ssfbench run``'s options."""
    return click.option("--config", type=click.Path(path_type=Path, dir_okay=False), is_eager=True,
                        expose_value=False, callback=_load_config, metavar="FILE.toml",
                        help="Read options from a TOML file (keys = these options' names, e.g. method = "
                             "\"ranking\", k = [1, 2, 4]); options given on the command line win.")(command)


# ---- command lines -----------------------------------------------------------------------------------


def given_options(ctx: click.Context, sources: Sequence[click.core.ParameterSource] = (
        click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP)) -> dict[str, Any]:
    """Configuration key -> value of every option of ``ctx`` whose value came from one of ``sources``
    (by default the command line or a configuration), in the command's option order."""
    out = {}
    for key, (param, negated) in option_keys(ctx.command).items():
        if negated or param.opts[0] != f"--{key}" or ctx.get_parameter_source(param.name) not in sources:
            continue  # each option once, by its first name
        value = ctx.params[param.name]
        out[key] = [_plain(v) for v in value] if param.multiple else _plain(value)
    return out


def _plain(value: Any) -> Any:
    """A parsed option value as a TOML / JSON value (paths as strings)."""
    return str(value) if isinstance(value, Path) else value


def to_argv(command: click.Command, options: Mapping[str, Any]) -> list[str]:
    """The flags that give ``options`` (configuration keys -> values) on a command line: list options
    space-separated after one flag (``--k 1 2 4``), the others repeated, flags by the name their
    value selects."""
    from ssfbench.cli.options import LIST_OPTIONS

    keys = option_keys(command)
    argv: list[str] = []
    for key, value in options.items():
        param, _ = keys[key.replace("_", "-")]
        flag = f"--{key.replace('_', '-')}"
        if param.is_flag:
            if param.secondary_opts:
                argv.append(flag if value else param.secondary_opts[0])
            elif value:
                argv.append(flag)
        elif param.multiple:
            values = [str(v) for v in value]
            argv += [flag, *values] if flag in LIST_OPTIONS else [x for v in values for x in (flag, v)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def recorded_argv() -> tuple[str, ...]:
    """The command line a result records: the invocation as typed, or, when options came from a
    configuration (``--config``, ``ssfbench rerun``), the equivalent ``ssfbench <command> ...`` with
    every given option spelled out, so the record never depends on a file."""
    from ssfbench.cli.options import invocation

    ctx = click.get_current_context(silent=True)
    if ctx is None or not any(ctx.get_parameter_source(p.name) is click.core.ParameterSource.DEFAULT_MAP for p in ctx.command.params):
        return invocation()
    return ("ssfbench", ctx.command.name or ctx.info_name, *to_argv(ctx.command, given_options(ctx)))


def result_options(path: Path, command: click.Command) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options of the command that made the result at ``path``, the result JSON): its recorded
    ``rerun.argv`` parsed with ``command`` (``ssfbench run``), configuration keys -> values. A file that
    is not a result, or a result not made by ``run``/``pretrain``/``embed``/``probe``, is a one-line
    :class:`UserError`."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable results JSON ({type(exc).__name__})") from None
    argv = ((result.get("rerun") or {}).get("argv") if isinstance(result, dict) else None) or []
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise UserError(f"{path}: its recorded command (rerun.argv) must be a JSON array of strings, "
                        f"got {type(argv).__name__} {json.dumps(argv)[:80]}")
    if len(argv) < 2 or argv[1] not in RUN_STAGES:
        shown = " ".join(map(str, argv)) or "none"
        raise UserError(f"{path}: its recorded command ({shown}) is not an `ssfbench run` command; "
                        "rerun it as it is")
    return parse_options(command, argv[2:], source=f"{path}: recorded command"), result


def parse_options(command: click.Command, args: Sequence[str], source: str,
                  defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options a command line gives ``command`` on top of ``defaults`` (configuration keys -> values;
    both only the options given, the command line's winning, ``--config`` files included); an argument
    it does not take or a bad value is a one-line :class:`UserError` naming ``source``."""
    from ssfbench.cli.options import expand_list_options

    default_map = to_default_map(command, defaults or {}, source)
    try:
        with command.make_context(command.name, expand_list_options(list(args)), default_map=default_map) as ctx:
            return given_options(ctx)
    except click.UsageError as exc:
        raise UserError(f"{source}: {exc.format_message()}") from None


# ---- TOML -------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    """One TOML value: strings as basic strings, numbers, booleans, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def to_toml(options: Mapping[str, Any], comments: Sequence[str] = ()) -> str:
    """``options`` (configuration keys -> values; None left out) as a TOML configuration, with
    ``comments`` as ``#`` lines on top."""
    lines = [f"# {c}" for c in comments]
    lines += [f"{key} = {_toml_value(value)}" for key, value in options.items() if value is not None]
    return "\n".join(lines) + "\n"


__all__ = ["config_option", "given_options", "option_keys", "parse_options", "read_config", "recorded_argv",
           "result_options", "to_argv", "to_default_map", "to_toml", "RUN_STAGES"]
