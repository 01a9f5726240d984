"""Lazy, typed registries of methods and datasets: built-ins plus third-party plugins.

Built-ins are ``"module:attr"`` strings imported on first use. Plugins come from the entry-point
groups ``ssfbench.methods`` and ``ssfbench.datasets`` (``[project.entry-points."ssfbench.methods"]``
in a plugin's pyproject). Built-ins win a name clash and the clash is reported; a plugin that fails
to import or breaks the contract is reported by name while everything else keeps working; an
unknown name gets "did you mean" suggestions.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar, cast

from ssfbench.api.dataset import Dataset
from ssfbench.api.method import Method
from ssfbench.errors import UserError

T = TypeVar("T")


class PluginWarning(UserWarning):
    """A plugin was skipped (import failure, broken contract) or lost a name clash."""


@dataclass
class Entry:
    """One registered name: where it comes from and how to import it."""

    name: str
    target: str  # "module:attr"
    origin: str  # "built-in" or the distribution that provides it
    loaded: type | None = None
    error: str | None = None


class Registry(Generic[T]):
    """Name -> class, resolved lazily; every class must subclass ``base``."""

    def __init__(self, kind: str, base: type, group: str, builtins: dict[str, str]) -> None:
        self.kind, self.base, self.group = kind, base, group
        self._builtins = builtins
        self._entries: dict[str, Entry] | None = None
        self.problems: dict[str, str] = {}
        #: plugins that lost a name clash: ``(entry, message)``, listed by :meth:`describe`
        self.clashes: list[tuple[Entry, str]] = []

    # ---- discovery -------------------------------------------------------------------------
    def _discover(self) -> dict[str, Entry]:
        if self._entries is not None:
            return self._entries
        entries = {n: Entry(n, t, "built-in") for n, t in self._builtins.items()}
        for ep in metadata.entry_points(group=self.group):
            origin = ep.dist.name if ep.dist is not None else "unknown distribution"
            if ep.name in entries:
                msg = (f"{self.kind} {ep.name!r} from plugin {origin!r} ({ep.value}) clashes with the "
                       f"{entries[ep.name].origin} one, which is kept")
                self.problems[f"{ep.name} ({origin})"] = msg
                self.clashes.append((Entry(ep.name, ep.value, origin), msg))
                warnings.warn(msg, PluginWarning, stacklevel=3)
                continue
            entries[ep.name] = Entry(ep.name, ep.value, origin)
        self._entries = entries
        return entries

    def _resolve(self, entry: Entry) -> type:
        if entry.loaded is not None:
            return entry.loaded
        if entry.error is not None:
            raise UserError(entry.error)
        try:
            module_name, _, attr = entry.target.partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the harness
            entry.error = f"{self.kind} {entry.name!r} ({entry.origin}, {entry.target}) failed to import: {type(exc).__name__}: {exc}"
        else:
            problem = self._contract_problem(entry.name, obj)
            if problem is None:
                entry.loaded = obj
                return obj
            entry.error = f"{self.kind} {entry.name!r} ({entry.origin}, {entry.target}) breaks the contract: {problem}"
        self.problems[entry.name] = entry.error
        raise UserError(entry.error)

    def _contract_problem(self, name: str, obj: Any) -> str | None:
        if not isinstance(obj, type) or not issubclass(obj, self.base):
            return f"{obj!r} is not a subclass of {self.base.__module__}.{self.base.__qualname__}"
        for attr in ("name", "summary"):
            if not isinstance(getattr(obj, attr, None), str):
                return f"class attribute {attr!r} (str) is missing"
        cls: Any = obj  # a subclass of the base with str name and summary, as checked above
        if cls.name != name:
            return f"its name attribute is {cls.name!r} but it is registered as {name!r}"
        if getattr(cls, "__abstractmethods__", None):
            return f"abstract methods not implemented: {', '.join(sorted(cls.__abstractmethods__))}"
        return None

    # ---- queries ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered name (built-ins and plugins), sorted."""
        return sorted(self._discover())

    def get(self, name: str) -> type:
        """The class registered as ``name``; unknown or broken names raise ``UserError``."""
        entries = self._discover()
        if name not in entries:
            near = difflib.get_close_matches(name, entries, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            raise UserError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(entries))})")
        return self._resolve(entries[name])

    def describe(self) -> list[tuple[str, str, str]]:
        """``(name, one-line summary or the problem, origin)`` for every name, and one row per plugin
        that lost a name clash (``NOT USED: ...``); never raises."""
        rows = []
        for name, entry in sorted(self._discover().items()):
            try:
                summary = cast(Any, self._resolve(entry)).summary
            except UserError as exc:
                summary = f"BROKEN: {exc}"
            rows.append((name, summary, entry.origin))
        rows += [(entry.name, f"NOT USED: {msg}", entry.origin) for entry, msg in self.clashes]
        return sorted(rows, key=lambda r: (r[0], r[1].startswith("NOT USED")))

    def reset(self) -> None:
        """Forget discovered entries (after installing a plugin in the same process, or in tests)."""
        self._entries = None
        self.problems = {}
        self.clashes = []


METHODS: Registry[Method] = Registry(
    "method", Method, "ssfbench.methods",
    {
        "ranking": "ssfbench.methods.ranking:RankingMethod",
        "random": "ssfbench.methods.random_init:RandomInit",
        "pixels": "ssfbench.methods.pixels:PixelsFloor",
        "triplet": "ssfbench.methods.triplet:TripletMethod",
        "npair": "ssfbench.methods.npair:NPairMethod",
        "supervised": "ssfbench.methods.supervised:SupervisedMethod",
        "fabnet": "ssfbench.methods.fabnet:FabNet",
        "tcae": "ssfbench.methods.tcae:TCAE",
        "frozen": "ssfbench.methods.frozen:FrozenEncoder",
        "torchscript": "ssfbench.methods.torchscript:TorchScriptEncoder",
        "python": "ssfbench.methods.python_encoder:PythonEncoder",
    },
)

DATASETS: Registry[Dataset] = Registry(
    "dataset", Dataset, "ssfbench.datasets",
    {
        "synth-vox": "ssfbench.datasets.synthetic:SynthVox",
        "synth-au": "ssfbench.datasets.synthetic:SynthAU",
        "synth-expr": "ssfbench.datasets.synthetic:SynthExpr",
        "bp4d": "ssfbench.datasets.bp4d:BP4D",
        "disfa": "ssfbench.datasets.disfa:DISFA",
        "emotionet": "ssfbench.datasets.emotionet:EmotioNet",
        "affectnet": "ssfbench.datasets.affectnet:AffectNet",
        "voxceleb2": "ssfbench.datasets.voxceleb2:VoxCeleb2",
    },
)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (built-in or plugin)."""
    return METHODS.get(name)


def list_methods() -> list[str]:
    """Names of every registered method."""
    return METHODS.names()


def get_dataset(name: str) -> type[Dataset]:
    """The dataset class registered as ``name`` (built-in or plugin)."""
    return DATASETS.get(name)


def list_datasets() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.names()
