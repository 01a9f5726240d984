"""Cosine top-k image retrieval over cached embeddings (the paper's Figure 2), and a score for it.

For each query frame, every other frame of the dataset is ranked by the cosine similarity of its
embedding to the query's. By default the query itself and every frame of the query's subject are
excluded, so a method cannot score by recognising the person or the neighbouring video frames.

Scores (over many seeded random queries, the same for every method):

* single-label data (one class per frame, e.g. AffectNet, synth-expr): mean precision@k, the
  fraction of the top k that share the query's class;
* multi-label data (AUs): mean AU agreement, the Jaccard index of the query's and each retrieved
  frame's active AUs over the AUs known in both (1 when neither has an active AU).

``chance`` is the same score for a retrieval that picks uniformly among the allowed frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_savefig
from ssfbench.runtime.layout import OutputLayout

UNKNOWN = -1


@dataclass
class EmbeddingSource:
    """Embeddings of one method run on one dataset, ready for retrieval."""

    name: str              # shown in the grid
    run_id: str
    embeddings: np.ndarray  # float32 [N, D]
    keys: np.ndarray        # str [N]
    dataset_fingerprint: str
    image_size: int | None = None
    data_seed: int = 0


@dataclass
class RetrievalScore:
    """Mean retrieval score over queries and what a random retrieval would get."""

    kind: str               # "precision@k" or "AU agreement@k"
    k: int
    score: float
    chance: float
    n_queries: int


# ---- ranking -------------------------------------------------------------------------------------


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def cosine_top_k(embeddings: np.ndarray, queries: Sequence[int], k: int, *, subjects: np.ndarray | None = None,
                 exclude_self: bool = True, exclude_same_subject: bool = True,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [Q, k], similarities [Q, k])`` of the ``k`` rows most cosine-similar to each query
    row, best first (ties by row index). Excluded rows (the query itself; rows of the query's subject
    when ``subjects`` is given) never appear; fewer than ``k`` allowed rows raises ``UserError``."""
    x = l2_normalise(embeddings)
    queries = np.asarray(queries, dtype=np.int64)
    if k < 1:
        raise UserError(f"--top: expected at least 1, got {k}")
    idx_out, sim_out = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        sims = x[q] @ x.T  # [q, N]
        blocked = _blocked(q, len(x), subjects, exclude_self, exclude_same_subject)
        if (~blocked).sum(axis=1).min(initial=len(x)) < k:
            raise UserError(f"--top {k}: a query has fewer than {k} frames left after the exclusions")
        sims = np.where(blocked, -np.inf, sims)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)  # best first, ties by row index
        idx_out.append(np.take_along_axis(top, order, axis=1))
        sim_out.append(np.take_along_axis(top_sims, order, axis=1))
    return np.concatenate(idx_out), np.concatenate(sim_out).astype(np.float32)


def _blocked(queries: np.ndarray, n: int, subjects: np.ndarray | None, exclude_self: bool,
             exclude_same_subject: bool) -> np.ndarray:
    """``[Q, N]`` True where a row may not be retrieved for a query."""
    blocked = np.zeros((len(queries), n), dtype=bool)
    if exclude_same_subject and subjects is not None:
        subjects = np.asarray(subjects)
        blocked |= subjects[queries][:, None] == subjects[None, :]
    if exclude_self:
        blocked[np.arange(len(queries)), queries] = True
    return blocked


# ---- scoring -------------------------------------------------------------------------------------


def is_single_label(targets: np.ndarray) -> bool:
    """Whether every frame has exactly one known positive label and no unknown one."""
    t = np.asarray(targets)
    return bool(t.size) and not (t == UNKNOWN).any() and bool(((t == 1).sum(axis=1) == 1).all())


def jaccard(query_targets: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[Q, M]`` Jaccard index of active labels between each query row and each row of ``targets``,
    over labels known in both; 1 where neither has an active label."""
    pq, kq = (query_targets == 1).astype(np.float32), (query_targets != UNKNOWN).astype(np.float32)
    pr, kr = (targets == 1).astype(np.float32), (targets != UNKNOWN).astype(np.float32)
    inter = pq @ pr.T
    union = pq @ kr.T + kq @ pr.T - inter
    return np.divide(inter, union, out=np.ones_like(inter), where=union > 0)


def relevance(targets: np.ndarray, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
    """``[Q, k]`` relevance of each retrieved row to its query: 1/0 same class (single-label) or the
    AU Jaccard index (multi-label)."""
    t = np.asarray(targets)
    if is_single_label(t):
        cls = t.argmax(axis=1)
        return (cls[retrieved] == cls[queries][:, None]).astype(np.float64)
    return np.stack([jaccard(t[[q]], t[r])[0] for q, r in zip(queries, retrieved)]).astype(np.float64)


def chance_level(targets: np.ndarray, subjects: np.ndarray | None, queries: np.ndarray, *,
                 exclude_same_subject: bool = True) -> float:
    """Mean relevance of a uniformly random allowed frame, over ``queries``."""
    t = np.asarray(targets)
    values = []
    for start in range(0, len(queries), 256):
        q = queries[start:start + 256]
        allowed = ~_blocked(q, len(t), subjects, True, exclude_same_subject)
        if is_single_label(t):
            cls = t.argmax(axis=1)
            rel = (cls[None, :] == cls[q][:, None]).astype(np.float64)
        else:
            rel = jaccard(t[q], t).astype(np.float64)
        values.append((rel * allowed).sum(axis=1) / np.maximum(allowed.sum(axis=1), 1))
    return float(np.concatenate(values).mean())


def retrieval_score(embeddings: np.ndarray, targets: np.ndarray, subjects: np.ndarray | None,
                    queries: np.ndarray, k: int, *, exclude_same_subject: bool = True) -> RetrievalScore:
    """Mean precision@k (single-label) or AU agreement@k (multi-label) over ``queries``, with chance."""
    idx, _ = cosine_top_k(embeddings, queries, k, subjects=subjects, exclude_same_subject=exclude_same_subject)
    rel = relevance(targets, queries, idx)
    kind = "precision@k" if is_single_label(targets) else "AU agreement@k"
    return RetrievalScore(kind=kind, k=k, score=float(rel.mean()),
                          chance=chance_level(targets, subjects, queries, exclude_same_subject=exclude_same_subject),
                          n_queries=len(queries))


def pick_queries(targets: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded query rows; for single-label data one per class in turn (diverse queries)."""
    rng = np.random.default_rng(seed)
    n = min(n, len(targets))
    if not is_single_label(targets):
        return np.sort(rng.choice(len(targets), size=n, replace=False))
    cls = np.asarray(targets).argmax(axis=1)
    pools = [rng.permutation(np.flatnonzero(cls == c)).tolist() for c in rng.permutation(np.unique(cls))]
    out: list[int] = []
    while len(out) < n:
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    return np.asarray(out, dtype=np.int64)


# ---- reading embeddings ------------------------------------------------------------------------


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(embeddings, keys, attributes)`` of a complete HDF5 embedding cache (``UserError`` otherwise)."""
    from ssfbench.evaluation.cache import read_complete

    if not Path(path).is_file():
        raise UserError(f"{path}: no embedding cache (was the run made with another --from folder?)")
    return read_complete(path)


def source_from_result(result: dict, out: Path, name: str | None = None) -> EmbeddingSource:
    """The embeddings a run's result used: its cache under ``out/embeddings`` (an ensemble's members'
    caches, each L2-normalised, concatenated). Runs with one encoder per fold are refused."""
    dataset, run_id = result["dataset"], result["run_id"]
    caches = result.get("ensemble", {}).get("caches") or [result.get("cache")]
    if any(not isinstance(c, str) for c in caches):
        raise UserError(f"run {run_id}: one encoder per fold; retrieval needs a single encoder (pick another --run)")
    default = OutputLayout(out).cache(run_id, dataset)
    parts, keys, fingerprint = [], None, ""
    for cache in caches:
        path = Path(cache) if Path(cache).is_file() or len(caches) > 1 else default
        emb, k, attrs = read_embeddings(path)
        if keys is not None and not np.array_equal(keys, k):
            raise UserError(f"{path}: ensemble member caches hold different frames")
        parts.append(l2_normalise(emb) if len(caches) > 1 else emb)
        keys, fingerprint = k, str(attrs.get("dataset_fingerprint", ""))
    return EmbeddingSource(name=name or _source_name(result), run_id=run_id, embeddings=np.concatenate(parts, axis=1),
                           keys=keys, dataset_fingerprint=fingerprint, image_size=result.get("image_size"),
                           data_seed=int(result.get("data_seed", 0)))


def _source_name(result: dict) -> str:
    """Short label of a run in the grid."""
    from ssfbench.report.tables import row_name

    return row_name(result.get("display_name") or result["method"], result.get("variant", ""), result.get("backbone", ""))


def source_from_checkpoint(path: Path, dataset, out: Path, device: str = "cpu") -> EmbeddingSource:
    """Embed ``dataset`` with the checkpoint at ``path`` (cached under
    ``out/embeddings/checkpoint-<sha12>/<dataset>.h5``)."""
    from ssfbench.api.checkpoint import load_checkpoint
    from ssfbench.evaluation.cache import cache_attributes, cached_embeddings
    from ssfbench.evaluation.embed import embed_frames

    method, digest = load_checkpoint(Path(path))
    attrs = cache_attributes(method, digest, dataset)
    cache = OutputLayout(out).checkpoint_cache(digest, dataset.name)
    emb = cached_embeddings(cache, attrs, dataset.keys,
                            lambda: embed_frames(method, method.preprocess, dataset, device=device, progress=False))
    return EmbeddingSource(name=f"{method.display_name()} ({Path(path).name})", run_id=f"checkpoint-{digest[:12]}",
                           embeddings=emb, keys=np.asarray(dataset.keys, dtype=str),
                           dataset_fingerprint=dataset.fingerprint(), image_size=method.image_size)


def align_to_dataset(source: EmbeddingSource, dataset_keys: np.ndarray) -> np.ndarray:
    """The source's embeddings reordered to the dataset's row order (frames must be the same)."""
    if len(source.keys) != len(dataset_keys) or set(source.keys.tolist()) != set(np.asarray(dataset_keys).tolist()):
        raise UserError(f"{source.name}: its embeddings cover other frames than the dataset opened "
                        f"({len(source.keys)} vs {len(dataset_keys)}); was it run with other dataset options?")
    pos = {k: i for i, k in enumerate(source.keys.tolist())}
    return source.embeddings[[pos[k] for k in np.asarray(dataset_keys).tolist()]]


# ---- the image grid ------------------------------------------------------------------------------


def _caption(targets_row: np.ndarray, label_names: Sequence[str], single: bool) -> str:
    """A frame's labels in a few characters: its class, or its active AUs."""
    active = [label_names[i] for i in np.flatnonzero(targets_row == 1)]
    if single:
        return active[0] if active else "?"
    text = " ".join(a.removeprefix("AU") for a in active) or "none"
    return ("AU " + text) if len(text) < 22 else ("AU " + text[:20] + "…")


def retrieval_grid(path: Path, *, query_images: Sequence[np.ndarray], results: Sequence[dict],
                   query_captions: Sequence[str]) -> Path:
    """Write the grid: one row per query, the query in the first column, then each method's top-k
    (``results[m]`` holds ``name``, ``score`` (a :class:`RetrievalScore`), ``images`` [Q][k],
    ``sims`` [Q, k], ``relevance`` [Q, k], ``captions`` [Q][k], ``single`` (single-label data)).
    Relevant hits are framed green, partial AU agreement orange, misses red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_q, k, n_m = len(query_images), len(results[0]["images"][0]), len(results)
    widths = [1.0] + sum(([0.25] + [1.0] * k for _ in range(n_m)), [])
    height = 1.75 * n_q + 1.0
    fig = plt.figure(figsize=(1.3 * sum(widths) + 0.3, height), dpi=110)
    grid = fig.add_gridspec(n_q, len(widths), width_ratios=widths, wspace=0.06, hspace=0.55,
                            left=0.01, right=0.99, top=1 - 0.75 / height, bottom=0.6 / height)
    for qi in range(n_q):
        _tile(fig.add_subplot(grid[qi, 0]), query_images[qi], query_captions[qi], "#1f4e9c", bold=True)
        for m, res in enumerate(results):
            for j in range(k):
                rel = float(res["relevance"][qi][j])
                color = "#1a9641" if rel >= 0.999 else ("#d7191c" if rel <= 0.001 else "#fdae61")
                agreement = "" if res.get("single", True) else f"  J {rel:.2f}"
                text = f"{res['captions'][qi][j]}\ncos {res['sims'][qi][j]:.3f}{agreement}"
                _tile(fig.add_subplot(grid[qi, 1 + m * (k + 1) + 1 + j]), res["images"][qi][j], text, color)
    top = grid[0, 0].get_position(fig)
    fig.text(top.x0 + top.width / 2, 0.995, "query", ha="center", va="top", fontsize=10, weight="bold")
    for m, res in enumerate(results):
        first = grid[0, 1 + m * (k + 1) + 1].get_position(fig)
        last = grid[0, 1 + m * (k + 1) + k].get_position(fig)
        s = res["score"]
        fig.text((first.x0 + last.x1) / 2, 0.995, f"{res['name']}\n{s.kind.replace('k', str(s.k))} = {s.score:.2f} "
                 f"(chance {s.chance:.2f}, {s.n_queries} queries)", ha="center", va="top", fontsize=9, weight="bold")
    fig.text(0.01, 0.005, "frame colour: green = relevant (same class / all AUs agree), orange = partial AU "
             "agreement (J = Jaccard of active AUs), red = not relevant", fontsize=7, color="#444444", va="bottom")
    try:
        atomic_savefig(fig, Path(path))
    finally:
        plt.close(fig)
    return Path(path)


def _tile(ax, image: np.ndarray, text: str, color: str, bold: bool = False) -> None:
    """One image with a coloured frame and a caption under it."""
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3)
    ax.set_xlabel(text, fontsize=7, labelpad=2, weight="bold" if bold else "normal")




# ---- the command ---------------------------------------------------------------------------------


def open_labelled(name: str, root: Path | None, image_size: int | None, seed: int, options: dict | None = None):
    """Open registered dataset ``name`` as labelled frames with keyword ``options`` for its ``open``
    (``UserError`` for a video dataset or a bad option)."""
    from ssfbench.api.dataset import LabeledFrames
    from ssfbench.api.registry import get_dataset

    cls = get_dataset(name)
    try:
        ds = cls.open(root, image_size=image_size or 64, seed=seed, **(options or {}))
    except TypeError as exc:
        raise UserError(f"--data-option: dataset {name!r}: {exc}") from None
    if not isinstance(ds, LabeledFrames):
        raise UserError(f"--dataset: {name!r} holds unlabeled videos; retrieval needs labelled frames")
    return ds


def _check_fingerprint(result: dict, ds) -> None:
    """The run must have been made on the data that is opened now."""
    want = result.get("dataset_fingerprint")
    if want and want != ds.fingerprint():
        raise UserError(f"run {result['run_id']}: made on another version of {ds.name} (fingerprint {want}, "
                        f"opened {ds.fingerprint()}); was it run with dataset options or another --root?")


def retrieve_report(*, methods: Sequence[str], runs: Sequence[str], checkpoints: Sequence[Path], dataset: str,
                    n_queries: int, k: int, png: Path, source_dir: Path, root: Path | None = None,
                    score_queries: int = 1000, exclude_same_subject: bool = True, seed: int = 0,
                    device: str = "cpu", options: dict | None = None) -> list[str]:
    """Retrieve for every chosen run or checkpoint, write the grid to ``png`` and return the lines to
    print (one score per method, what was excluded, the file written). ``options`` are keyword options
    of the dataset's ``open`` (as the runs were made with ``--data-option``)."""
    from ssfbench.report.compare import resolve_run
    from ssfbench.results.store import load_results

    results = load_results(OutputLayout(source_dir).results.root)
    chosen = [resolve_run(results, dataset, m, option="--method") for m in methods]
    chosen += [resolve_run(results, dataset, r, option="--run") for r in runs]
    first = chosen[0] if chosen else {}
    options = {**first.get("dataset_options", {}).get(dataset, {}), **(options or {})}
    ds = open_labelled(dataset, root, first.get("image_size"), int(first.get("data_seed", 0)), options)
    sources = []
    for result in chosen:
        _check_fingerprint(result, ds)
        sources.append(source_from_result(result, source_dir))
    for path in checkpoints:
        sources.append(source_from_checkpoint(path, ds, source_dir, device=device))
    embeddings = [align_to_dataset(s, ds.keys) for s in sources]
    targets, subjects = np.asarray(ds.targets), np.asarray(ds.subjects)
    rng = np.random.default_rng(seed)
    scored = np.sort(rng.choice(len(ds), size=min(score_queries, len(ds)), replace=False))
    shown = pick_queries(targets, n_queries, seed)
    single = is_single_label(targets)
    panels, lines = [], []
    for source, emb in zip(sources, embeddings):
        score = retrieval_score(emb, targets, subjects, scored, k, exclude_same_subject=exclude_same_subject)
        idx, sims = cosine_top_k(emb, shown, k, subjects=subjects, exclude_same_subject=exclude_same_subject)
        images = ds.read_images(idx.ravel().tolist())
        panels.append({"name": source.name, "score": score, "sims": sims, "single": single,
                       "relevance": relevance(targets, shown, idx),
                       "images": [images[i * k:(i + 1) * k] for i in range(len(shown))],
                       "captions": [[_caption(targets[j], ds.label_names, single) for j in row] for row in idx]})
        lines.append(f"{source.name}: {score.kind.replace('k', str(k))} = {score.score:.3f} "
                     f"(chance {score.chance:.3f}; {score.n_queries} queries; run {source.run_id})")
    retrieval_grid(png, query_images=ds.read_images(shown.tolist()), results=panels,
                   query_captions=[_caption(targets[q], ds.label_names, single) for q in shown])
    excluded = "the query itself and every frame of its subject" if exclude_same_subject else "the query itself"
    lines.append(f"excluded from retrieval: {excluded}; cosine similarity of the cached embeddings")
    lines.append(f"wrote {png}")
    return lines


__all__ = ["EmbeddingSource", "RetrievalScore", "cosine_top_k", "l2_normalise", "is_single_label", "jaccard",
           "relevance", "chance_level", "retrieval_score", "pick_queries", "read_embeddings",
           "source_from_result", "source_from_checkpoint", "align_to_dataset", "retrieval_grid", "retrieve_report"]
