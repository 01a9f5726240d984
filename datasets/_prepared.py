"""Prepared stores: a labelled dataset's decoded face crops, labels and folds in one HDF5 file, so
later runs skip decoding (``ssfbench datasets prepare NAME --root PATH --out FILE.h5``, then
``--root NAME=FILE.h5`` wherever a root is accepted).

Layout (format ``ssfbench.prepared/1``): datasets ``keys`` and ``subjects`` (utf-8), ``targets``
int8 ``[N, C]``, ``fold_role`` int8 ``[F, N]`` (1 test, 0 train, -1 neither) and ``images``:
either uint8 ``[N, S, S, 3]`` (codec ``raw``, gzip-compressed per frame) or one JPEG per row
(codec ``jpeg``, quality 95, variable-length uint8). Attributes name the dataset, its labels and
metric, the source root, options and fingerprint, the crop record and ``complete``. The file is
written under a temporary name and renamed only when complete. ``prepare`` replaces only a store
of ours, never writes into the dataset copy (:func:`ssfbench.api.verify.check_store_target`), and a run that asks for
larger crops than a store holds is refused (they would be upsampled while the result said otherwise).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ssfbench.api.dataset import CountsFaces, Fold, LabeledFrames
from ssfbench.datasets._digest import Digest
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_bytes

FORMAT = "ssfbench.prepared/1"
CODECS = ("jpeg", "raw")
_STR = h5py.string_dtype("utf-8")


class ProcessLocalFile:
    """An HDF5 file opened read-only at most once per process: h5py handles must not cross a fork
    (DataLoader workers), so a pickled or forked copy opens its own on first use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __getitem__(self, name: str) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[name]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None, "_pid": None}


def is_prepared(root: Path | str) -> bool:
    """True when ``root`` is a file in HDF5 format (a prepared store or a video index)."""
    path = Path(root)
    return path.is_file() and h5py.is_hdf5(path)


def _encode_jpeg(image: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _decode_jpegs(blobs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """uint8 ``[H, W, 3]`` images of JPEG byte strings: one batched libjpeg-turbo call through
    torchvision (the same pixels as PIL, about twice as fast), or PIL where torchvision no longer
    has it (its image codecs are deprecated in favour of TorchCodec)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torchvision.io import ImageReadMode, decode_jpeg
        except ImportError:
            return [np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB"), dtype=np.uint8) for b in blobs]
        decoded = decode_jpeg([torch.from_numpy(np.array(b, dtype=np.uint8)) for b in blobs], mode=ImageReadMode.RGB)
    if len({im.shape for im in decoded}) == 1:  # one batched channels-last copy instead of one per image
        return list(torch.stack(decoded).permute(0, 2, 3, 1).contiguous().numpy())
    return [np.ascontiguousarray(im.permute(1, 2, 0).numpy()) for im in decoded]


def fold_roles(folds: Sequence[Fold], n: int) -> np.ndarray:
    """int8 ``[F, n]``: 1 where a row is in a fold's test set, 0 in its train set, -1 neither."""
    roles = np.full((len(folds), n), -1, np.int8)
    for i, fold in enumerate(folds):
        roles[i, fold.train] = 0
        roles[i, fold.test] = 1
    return roles


def _with_counts(ds: Any) -> dict[str, Any]:
    """``ds.preprocessing()`` plus, for a store, how every face was found (all rows were read)."""
    found = dict(ds.faces_found) if isinstance(ds, CountsFaces) else {}
    return {**ds.preprocessing(), **({"faces_found": dict(sorted(found.items()))} if found else {})}


def write_prepared(ds: Any, out: Path, *, codec: str = "jpeg", batch: int = 64, progress: bool = True) -> Path:
    """Decode every row of the labelled dataset ``ds`` (an adapter's ``RealFrames`` or any
    :class:`LabeledFrames`, e.g. a synthetic set) and write the store to ``out``."""
    if codec not in CODECS:
        raise UserError(f"--codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if len(ds) == 0:
        raise UserError(f"{ds.name}: no rows to prepare")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; expected the path of the store file to write")
    if out.parent and not out.parent.exists():
        raise UserError(f"{out.parent}: folder does not exist")
    folds = ds.folds()
    size = ds.image_size

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("keys", data=ds.keys.astype(object), dtype=_STR)
            f.create_dataset("subjects", data=ds.subjects.astype(object), dtype=_STR)
            f.create_dataset("targets", data=ds.targets.astype(np.int8))
            f.create_dataset("fold_role", data=fold_roles(folds, len(ds)))
            if codec == "raw":
                images = f.create_dataset("images", shape=(len(ds), size, size, 3), dtype=np.uint8,
                                          chunks=(1, size, size, 3), compression="gzip", compression_opts=4)
            else:
                images = f.create_dataset("images", shape=(len(ds),), dtype=h5py.vlen_dtype(np.uint8))
            bar = tqdm(total=len(ds), unit="img", desc=f"prepare {ds.name}", disable=not progress)
            with bar:
                for start in range(0, len(ds), batch):
                    idx = list(range(start, min(start + batch, len(ds))))
                    for i, image in zip(idx, ds.read_images(idx)):
                        images[i] = image if codec == "raw" else _encode_jpeg(image)
                    bar.update(len(idx))
            f.attrs.update({
                "format": FORMAT, "dataset": ds.name, "summary": ds.summary, "metric": ds.metric,
                "label_names": json.dumps(list(ds.label_names)), "fold_names": json.dumps([fd.name for fd in folds]),
                "source_root": str(Path(ds.root).resolve()) if getattr(ds, "root", None) else "",
                "source_fingerprint": ds.fingerprint(),
                "options": json.dumps(getattr(ds, "options", {}), sort_keys=True, default=str), "image_size": size, "codec": codec,
                "preprocessing": json.dumps(_with_counts(ds), sort_keys=True), "complete": True,
            })

    atomic_write_bytes(out, write)
    return out


def open_prepared(path: Path, expected: str) -> PreparedFrames:
    """The store at ``path``, which must be a complete store of dataset ``expected``."""
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as exc:
        raise UserError(f"{path}: unreadable prepared store ({exc})") from None
    if attrs.get("format") != FORMAT:
        raise UserError(f"{path}: not a prepared store of ssfbench (format {attrs.get('format')!r}, expected {FORMAT})")
    if attrs.get("dataset") != expected:
        raise UserError(f"{path}: a prepared store of {attrs.get('dataset')!r}, not of {expected!r}")
    if not attrs.get("complete"):
        raise UserError(f"{path}: prepared store is incomplete; run `ssfbench datasets prepare` again")
    return PreparedFrames(path, attrs)


class PreparedFrames(LabeledFrames):
    """A labelled dataset read from a prepared store (same keys, labels and folds as its source)."""

    summary = "face crops prepared by `ssfbench datasets prepare`"

    def __init__(self, path: Path, attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        self.name = str(attrs["dataset"])
        self.metric = str(attrs["metric"])
        self.label_names = tuple(json.loads(attrs["label_names"]))
        self.codec = str(attrs["codec"])
        self.image_size = int(attrs["image_size"])
        self._attrs = attrs
        self._fold_names = json.loads(attrs["fold_names"])
        with h5py.File(self.path, "r") as f:
            self.keys = f["keys"].asstr()[:].astype(str)
            self.subjects = f["subjects"].asstr()[:].astype(str)
            self.targets = f["targets"][:].astype(np.int8)
            self._roles = f["fold_role"][:]
        self._store = ProcessLocalFile(self.path)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0) -> LabeledFrames:
        """Open a store by path (the dataset name is read from the file)."""
        if root is None or not is_prepared(root):
            raise UserError(f"{root}: not a prepared store")
        with h5py.File(root, "r") as f:
            name = str(f.attrs.get("dataset"))
        return open_prepared(Path(root), name)

    def source_options(self) -> dict[str, Any]:
        """The adapter options the store was prepared with."""
        return json.loads(self._attrs.get("options", "{}"))

    def fingerprint(self) -> str:
        """Digest of the source's fingerprint, the crop size and the codec."""
        return Digest("prepared", str(self._attrs["source_fingerprint"]), str(self.image_size), self.codec).hex()

    def folds(self) -> list[Fold]:
        """The folds of the source, as stored."""
        return [Fold(name, np.flatnonzero(self._roles[i] == 0), np.flatnonzero(self._roles[i] == 1))
                for i, name in enumerate(self._fold_names)]

    def preprocessing(self) -> dict[str, Any]:
        """The source's crop record plus where the crops come from."""
        return {**json.loads(self._attrs["preprocessing"]), "prepared_store": self.path.name, "codec": self.codec}

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as stored (uint8 ``[S, S, 3]``)."""
        return self.read_images([index])[0]

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Rows ``indices`` (one sorted HDF5 read for raw stores)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return []
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"row out of range (0..{len(self) - 1})")
        images = self._store["images"]
        order = np.unique(idx)
        if order[-1] - order[0] + 1 == len(order):  # a run of rows: one slice read
            rows = images[int(order[0]):int(order[-1]) + 1]
        else:
            rows = images[order]
        pos = {int(r): k for k, r in enumerate(order)}
        if self.codec == "raw":
            return [np.asarray(rows[pos[int(i)]]) for i in idx]
        return _decode_jpegs([rows[pos[int(i)]] for i in idx])

