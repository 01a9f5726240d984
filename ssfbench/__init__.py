"""ssfbench: a benchmark harness for self-supervised facial representations.

The package root exposes the version; the harness lives in submodules (``ssfbench.nn.losses``,
``ssfbench.evaluation.probe``, ``ssfbench.api.registry``, ...). Method plugins import as ``ssfbench.methods.*`` and
dataset adapters as ``ssfbench.datasets.*``.
"""

__version__ = "0.1.0"

#: Version of the evaluation protocol (probe, folds, metrics, encoder initialisation, floors). A changed
#: default is a new version. 2: every layer live at initialisation (no zero-initialised residual
#: branches); untrained encoders evaluated with BatchNorm statistics of pretraining frames.
PROTOCOL_VERSION = "2"
