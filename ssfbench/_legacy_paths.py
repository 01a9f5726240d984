"""Old import paths of the plugin contract, kept importable for plugins written before the core was
grouped into rooms (``ssfbench.api``, ``ssfbench.nn``, ``ssfbench.runtime``, ...).

A plugin that says ``from ssfbench.method import Method`` gets the very module object that
``ssfbench.api.method`` is (same classes, so ``issubclass`` checks and the registry agree). Only
the paths that docs/adding-a-method.md and docs/adding-a-dataset.md used to name, and the long-standing
contract paths (losses, sampling, encoders, probe, metrics, registry), are listed; new
code imports the new paths (or the short names at the package root: ``from ssfbench import Method``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: old module -> the module it now is (the plugin-facing subset of the moves)
ALIASES: dict[str, str] = {
    "ssfbench.method": "ssfbench.api.method",
    "ssfbench.data": "ssfbench.api.dataset",
    "ssfbench.options": "ssfbench.api.settings",
    "ssfbench.preprocess": "ssfbench.api.preprocess",
    "ssfbench.registry": "ssfbench.api.registry",
    "ssfbench.verify": "ssfbench.api.verify",
    "ssfbench.checkpoint": "ssfbench.api.checkpoint",
    "ssfbench.encoders": "ssfbench.nn.encoders",
    "ssfbench.losses": "ssfbench.nn.losses",
    "ssfbench.sampling": "ssfbench.nn.sampling",
    "ssfbench.statedict": "ssfbench.nn.statedict",
    "ssfbench.fileio": "ssfbench.runtime.fileio",
    "ssfbench.seeds": "ssfbench.runtime.seeds",
    "ssfbench.alignment": "ssfbench.faces.alignment",
    "ssfbench.probe": "ssfbench.evaluation.probe",
    "ssfbench.metrics": "ssfbench.evaluation.metrics",
    "ssfbench.datasets._layout": "ssfbench.datasets.kit",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the module object of its new name."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target module was executed under its own name."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`ALIASES` (and nothing else)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = ALIASES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
