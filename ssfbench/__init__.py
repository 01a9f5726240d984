"""ssfbench: a benchmark harness for self-supervised facial representations.

The package root is the Python API (what a notebook or script imports), loaded lazily so that
``import ssfbench`` stays light (no torch until a name below is used):

* :func:`evaluate` — a frozen ``nn.Module`` or function, evaluated like ``ssfbench run`` evaluates a
  method (same caches, probe, folds, results JSON and leaderboard rows);
* :func:`run` — ``ssfbench run`` itself (pretraining, the k x seed sweep and the ensemble);
* :func:`leaderboard` — the rows ``ssfbench compare`` shows for a dataset, as a DataFrame;
* :class:`Preprocess` (how images become model input), :class:`Result` (one results JSON);
* :class:`Method`, :class:`MethodConfig`, :class:`Encoder` — what method plugins build on.

``docs/python-api.md`` has worked examples. The core is grouped into rooms by job
(``docs/layout.md``): ``ssfbench.api`` (the plugin contract), ``nn``, ``runtime``, ``train``,
``evaluation``, ``results``, ``pipeline``, ``report``, ``faces``, ``bench`` and ``cli``. Method
plugins import as ``ssfbench.methods.*`` and dataset adapters as ``ssfbench.datasets.*``; old module
paths of the contract keep working (:mod:`ssfbench._legacy_paths`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ssfbench import _legacy_paths
from ssfbench.version import PROTOCOL_VERSION, __version__

_legacy_paths.install()

#: the public names of the package root and the submodule each one lives in (imported on first use)
_EXPORTS: dict[str, str] = {
    "evaluate": "ssfbench.pipeline.outside",
    "leaderboard": "ssfbench.report.leaderboard",
    "run": "ssfbench.pipeline.sweep",
    "Preprocess": "ssfbench.api.preprocess",
    "Result": "ssfbench.results.records",
    "Method": "ssfbench.api.method",
    "MethodConfig": "ssfbench.api.method",
    "Encoder": "ssfbench.nn.encoders",
}

__all__ = ["PROTOCOL_VERSION", "__version__", "evaluate", "leaderboard", "run", "Preprocess", "Result", "Method",
           "MethodConfig", "Encoder"]

if TYPE_CHECKING:
    from ssfbench.api.method import Method, MethodConfig
    from ssfbench.api.preprocess import Preprocess
    from ssfbench.nn.encoders import Encoder
    from ssfbench.pipeline.outside import evaluate
    from ssfbench.pipeline.sweep import run
    from ssfbench.report.leaderboard import leaderboard
    from ssfbench.results.records import Result


def __getattr__(name: str) -> Any:
    """Import a public name of :data:`_EXPORTS` from its submodule on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssfbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
