"""Where everything a run writes lives: the one owner of the output folder's layout.

::

    <out>/runs/<run_id>/best.pt, best.json, last.pt          checkpoint, its record, resume state
    <out>/runs/<run_id>/curve.csv                            pretraining curve (loss, validation, lr, frames/s)
    <out>/runs/<run_id>/tb/                                  TensorBoard events (``--log tensorboard``)
    <out>/runs/<run_id>/folds/<dataset>-<fp[:8]>/<fold>.pt   label-trained methods: one encoder per fold
    <out>/embeddings/<run_id>/<dataset>.h5                   embedding caches
    <out>/embeddings/<run_id>/<dataset>/<fold>.h5            label-trained methods: one cache per fold
    <out>/embeddings/checkpoint-<sha[:12]>/<dataset>.h5      caches of checkpoints outside any run (retrieve)
    <out>/results/runs/<run_id>/<dataset>.json               one result per (run, dataset)
    <out>/results/runs/<run_id>/<dataset>.predictions.npz    its per-frame test predictions
    <out>/results/<dataset>.csv                              leaderboards rebuilt from the JSON files

Every module that reads or writes these files asks an :class:`OutputLayout` (or, for a results
folder alone, :class:`ResultsLayout`) instead of joining path parts itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT = "best.pt"
CHECKPOINT_RECORD = "best.json"
RESUME_STATE = "last.pt"
CURVE = "curve.csv"
TENSORBOARD_DIR = "tb"
PREDICTIONS_SUFFIX = ".predictions.npz"


@dataclass(frozen=True)
class ResultsLayout:
    """A results folder (``<out>/results``, or the repository's committed ``results/``)."""

    root: Path

    def result(self, run_id: str, dataset: str) -> Path:
        """The result JSON of ``run_id`` on ``dataset``."""
        return self.root / "runs" / run_id / f"{dataset}.json"

    def predictions(self, run_id: str, dataset: str) -> Path:
        """The per-frame test predictions beside that result."""
        return self.root / "runs" / run_id / f"{dataset}{PREDICTIONS_SUFFIX}"

    def result_files(self) -> list[Path]:
        """Every result JSON in the folder, sorted by path (a stable order)."""
        return sorted((self.root / "runs").glob("*/*.json"))

    def leaderboard(self, dataset: str) -> Path:
        """The leaderboard CSV of ``dataset``."""
        return self.root / f"{dataset}.csv"


@dataclass(frozen=True)
class OutputLayout:
    """An ssfbench output folder (``--out``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ---- checkpoints ---------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        """The folder of one run's checkpoints."""
        return self.root / "runs" / run_id

    def checkpoint(self, run_id: str) -> Path:
        """The selected (or only) checkpoint of a run."""
        return self.run_dir(run_id) / CHECKPOINT

    def curve(self, run_id: str) -> Path:
        """The pretraining curve of a run (CSV beside ``best.json``; :mod:`ssfbench.train.curves`)."""
        return self.run_dir(run_id) / CURVE

    def tensorboard(self, run_id: str) -> Path:
        """The folder of a run's TensorBoard event files (``--log tensorboard``)."""
        return self.run_dir(run_id) / TENSORBOARD_DIR

    def fold_checkpoint(self, run_id: str, dataset: str, fingerprint: str, fold: str) -> Path:
        """A label-trained method's encoder of one fold of one dataset version."""
        return self.run_dir(run_id) / "folds" / f"{dataset}-{fingerprint[:8]}" / f"{fold}.pt"

    # ---- embedding caches ------------------------------------------------------------------------
    def cache(self, run_id: str, dataset: str) -> Path:
        """The embedding cache of a run's encoder on ``dataset``."""
        return self.root / "embeddings" / run_id / f"{dataset}.h5"

    def fold_cache(self, run_id: str, dataset: str, fold: str) -> Path:
        """A label-trained method's cache of one fold's encoder."""
        return self.root / "embeddings" / run_id / dataset / f"{fold}.h5"

    def checkpoint_cache(self, sha256: str, dataset: str) -> Path:
        """The cache of a checkpoint that belongs to no run (``retrieve --checkpoint``)."""
        return self.root / "embeddings" / f"checkpoint-{sha256[:12]}" / f"{dataset}.h5"

    # ---- results ---------------------------------------------------------------------------------
    @property
    def results(self) -> ResultsLayout:
        """The results folder of this output folder."""
        return ResultsLayout(self.root / "results")


def record_path(checkpoint: Path) -> Path:
    """The JSON record written beside a checkpoint (``best.pt`` -> ``best.json``)."""
    return Path(checkpoint).with_suffix(".json")
