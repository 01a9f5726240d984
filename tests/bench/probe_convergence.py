"""Is the protocol's probe converged on the embeddings of actual runs? For every embedding cache
under an output folder, the mean score of the protocol's probe (100 full-batch Adam epochs) beside
the same probe trained 300 / 1,000 / 3,000 epochs and a converged logistic regression
(scikit-learn lbfgs, standardised inputs, intercept, ``class_weight="balanced"``, up to 5,000
iterations), on the same folds and metric. Synthetic datasets only (they open without a root).

    python tests/bench/probe_convergence.py ssfbench-out [--image-size 64]

Numbers from it are in BENCHMARKS.md ("Linear probe against scikit-learn").
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ssfbench.api.registry import get_dataset
from ssfbench.evaluation.cache import read_attrs
from ssfbench.evaluation.metrics import per_label_auc, per_label_f1
from ssfbench.evaluation.probe import fit_predict

EPOCHS = (100, 300, 1000, 3000)


def converged_logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Per-label probabilities of a converged class-balanced logistic regression (unknown labels
    masked; a label without both classes in training gets 0)."""
    scaler = StandardScaler().fit(x_train)
    prob = np.zeros((len(x_test), y_train.shape[1]))
    for j in range(y_train.shape[1]):
        known = y_train[:, j] >= 0
        if len(np.unique(y_train[known, j])) < 2:
            continue
        model = LogisticRegression(class_weight="balanced", max_iter=5000)
        model.fit(scaler.transform(x_train[known]), y_train[known, j])
        prob[:, j] = model.predict_proba(scaler.transform(x_test))[:, 1]
    return prob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="an ssfbench output folder (its embeddings/*/*.h5)")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # labels without positives in a fold: scored as the harness does
    fits = {f"probe {e} ep": (lambda a, b, c, e=e: fit_predict(a, b, c, seed=0, epochs=e)) for e in EPOCHS}
    fits["lbfgs"] = converged_logistic
    print("run | dataset | " + " | ".join(fits))
    for cache in sorted(args.out.glob("embeddings/*/*.h5")):
        attrs = read_attrs(cache)
        ds = get_dataset(attrs["dataset"]).open(image_size=args.image_size)
        if ds.fingerprint() != attrs["dataset_fingerprint"]:
            raise SystemExit(f"{cache}: made from other data than {attrs['dataset']} at --image-size {args.image_size}")
        with h5py.File(cache) as f:
            x = f["embeddings"][...]
        metric = per_label_f1 if ds.metric == "f1" else per_label_auc
        cells = []
        for fit in fits.values():
            started, per_fold = time.time(), []
            for fold in ds.folds():
                prob = fit(x[fold.train], ds.targets[fold.train], x[fold.test])
                per_fold.append(np.nanmean(metric(ds.targets[fold.test], prob)))
            cells.append(f"{100 * np.mean(per_fold):.2f} ({time.time() - started:.0f} s)")
        print(f"{cache.parent.name} | {attrs['dataset']} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
