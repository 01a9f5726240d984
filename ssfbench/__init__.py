"""ssfbench: a benchmark harness for self-supervised facial representations.

The core is grouped into rooms by job (docs/layout.md): ``ssfbench.api`` (the plugin contract),
``nn``, ``runtime``, ``train``, ``evaluation``, ``results``, ``pipeline``, ``report``, ``faces``,
``bench`` and ``cli``. Method plugins import as ``ssfbench.methods.*`` and dataset adapters as
``ssfbench.datasets.*``. The names a plugin needs most are importable from here
(``from ssfbench import Method, MethodConfig, Encoder``), loaded on first use so that
``import ssfbench`` stays light; old module paths of the contract keep working
(:mod:`ssfbench._legacy_paths`).
"""

from typing import Any

from ssfbench import _legacy_paths

__version__ = "0.1.0"

#: Version of the evaluation protocol (probe, folds, metrics, encoder initialisation, floors). A changed
#: default is a new version. 2: every layer live at initialisation (no zero-initialised residual
#: branches); untrained encoders evaluated with BatchNorm statistics of pretraining frames.
PROTOCOL_VERSION = "2"

_legacy_paths.install()

#: short name -> the module that defines it (imported on first access)
_LAZY = {
    "Method": "ssfbench.api.method",
    "MethodConfig": "ssfbench.api.method",
    "Encoder": "ssfbench.nn.encoders",
}


def __getattr__(name: str) -> Any:
    """The short names of :data:`_LAZY`, imported when first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssfbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
