"""The versions every cache, checkpoint and result records: the harness's own and the evaluation
protocol's. Rooms ask this module (not the package root, which is the Python API above them)."""

__version__ = "0.1.0"

#: Version of the evaluation protocol (probe, folds, metrics, encoder initialisation, floors). A changed
#: default is a new version. 2: every layer live at initialisation (no zero-initialised residual
#: branches); untrained encoders evaluated with BatchNorm statistics of pretraining frames.
PROTOCOL_VERSION = "2"
