"""The base of the labelled adapters over users' copies (BP4D, DISFA, EmotioNet, AffectNet):
scanning a copy without raising, the one-line error and skip warning of ``open``, ``verify``'s
report, prepared stores, face crops per row and the fingerprint."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ssfbench.data import LabeledFrames
from ssfbench.datasets._digest import Digest
from ssfbench.datasets._faces import check_image, read_face, sample_indices, thread_map
from ssfbench.datasets._files import require_root
from ssfbench.datasets._problems import Problems
from ssfbench.errors import UserError
from ssfbench.options import Option


class RealFrames(LabeledFrames):
    """A labelled dataset read from a user's copy in its official layout.

    Subclasses set the class attributes, ``OPTIONS`` and implement :meth:`_scan`, which fills
    ``keys``, ``subjects``, ``targets``, ``paths`` (image path per row, relative to ``root``),
    ``boxes`` (float32 ``[N, 4]`` face boxes; NaN = centre square), ``layout`` (what was found
    where, for the report) and records every problem in ``problems`` without raising, feeding
    label bytes and the image list into ``digest``. Scanning reads labels and lists folders; it
    never decodes an image (``verify`` does).
    """

    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: Bump when the rows, labels or crops an adapter produces change (part of the fingerprint).
    ADAPTER_VERSION: ClassVar[str] = "1"

    def __init__(self, root: Path, *, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        self.root = root
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.options = self.resolve_options(options)
        self.problems = Problems()
        self.layout: dict[str, str] = {}
        self.digest = Digest(self.name, self.ADAPTER_VERSION, str(sorted(self.options.items())), str(self.seed))
        self.keys = np.array([], dtype=str)
        self.subjects = np.array([], dtype=str)
        self.targets = np.zeros((0, len(self.label_names)), np.int8)
        self.paths = np.array([], dtype=str)
        self.boxes = np.zeros((0, 4), np.float32)
        self.media_checked = "not decoded (--quick)"
        self._scan()
        self.digest.text(self.image_size).text(sorted(self.crop_record().items()))
        self.digest.strings(self.keys.tolist()).strings(self.paths.tolist())
        self._fingerprint = self.digest.hex()

    # ---- construction ----------------------------------------------------------------------
    @abc.abstractmethod
    def _scan(self) -> None:
        """Read labels and list images; fill the arrays; record problems (never raise on data)."""

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> LabeledFrames:
        """Open the copy at ``root`` (or a store written by ``ssfbench datasets prepare``) with the
        adapter's ``OPTIONS`` as keywords (what ``run --data-option NAME.KEY=VALUE`` passes). Any error
        in the copy raises a one-line :class:`UserError` naming the file; skipped rows are counted
        and warned about (:class:`~ssfbench.datasets._problems.DatasetWarning`)."""
        return cls._open(root, image_size=image_size, seed=seed, **options)

    @classmethod
    def _open(cls, root: Path | None, *, image_size: int = 64, seed: int = 0, **options: Any) -> LabeledFrames:
        """:meth:`open` (options validated against ``OPTIONS``)."""
        from ssfbench.datasets._prepared import is_prepared, open_prepared

        if root is not None and is_prepared(root):
            store = open_prepared(Path(root), cls.name)
            wanted = {k: v for k, v in cls.resolve_options(options).items()
                      if v != cls.OPTIONS[k].default}
            stored = store.source_options()
            for key, value in wanted.items():
                if stored.get(key) != value:
                    raise UserError(f"{root}: prepared with {key}={stored.get(key)!r}, not {value!r}; "
                                    f"prepare it again with --set {key}={value}")
            return store
        ds = cls(require_root(root, cls.name), image_size=image_size, seed=seed, **options)
        ds.problems.raise_errors(cls.name, ds.root)
        ds.problems.warn_skips(cls.name, ds.root)
        return ds

    @classmethod
    def inspect(cls, root: Path | None, *, image_size: int = 64, seed: int = 0, quick: bool = False,
                sample: int | None = None, **options: Any):
        """Scan the copy at ``root`` and, unless ``quick``, decode its images (all, or ``sample`` of
        them); returns a :class:`ssfbench.verify.Report` listing every problem."""
        ds = cls(require_root(root, cls.name), image_size=image_size, seed=seed, **options)
        if not quick:
            ds.check_media(sample)
        return ds.report()

    @classmethod
    def prepare(cls, root: Path | None, out: Path, *, image_size: int = 256, codec: str = "jpeg", seed: int = 0,
                **options: Any) -> Path:
        """Decode and crop every row of the copy at ``root`` into the store ``out`` (see
        :mod:`ssfbench.datasets._prepared`); a copy with errors is refused like ``open`` refuses it."""
        from ssfbench.datasets._prepared import is_prepared, write_prepared

        if root is not None and is_prepared(root):
            raise UserError(f"{root}: already a prepared store; pass the folder of the original copy")
        ds = cls._open(root, image_size=image_size, seed=seed, **options)
        return write_prepared(ds, out, codec=codec)

    # ---- the LabeledFrames contract --------------------------------------------------------
    def fingerprint(self) -> str:
        """Digest of the label files' bytes, the rows (keys and image paths), options and crop."""
        return self._fingerprint

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as a uint8 ``[S, S, 3]`` face crop (``S`` = the ``image_size`` opened with)."""
        box = self.boxes[index]
        return read_face(self.root / self.paths[index], None if np.isnan(box[0]) else tuple(map(float, box)),
                         self.image_size)

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Rows ``indices``, decoded by a few threads (Pillow releases the GIL while decoding)."""
        return thread_map(self.read_image, [int(i) for i in indices])

    def crop_record(self) -> dict[str, Any]:
        """How faces are cropped (subclasses describe their source of boxes)."""
        return {"crop": "center-square", "output_size": self.image_size, "resample": "bilinear (antialiased)"}

    def preprocessing(self) -> dict[str, Any]:
        """The face-crop choice plus the rows left out of the protocol (recorded in cache attributes)."""
        return {**self.crop_record(), "rows_skipped": self.problems.counts("skip")}

    # ---- verification ----------------------------------------------------------------------
    def check_media(self, sample: int | None = None) -> None:
        """Decode every image of the protocol (or ``sample`` of them); each failure is an error."""
        unique = sorted(set(self.paths.tolist()))
        chosen = sample_indices(len(unique), sample)
        paths = [self.root / unique[i] for i in chosen]
        for path, why in zip(paths, thread_map(check_image, paths)):
            if why is not None:
                self.problems.error("unreadable image", path, why)
        what = "all" if len(chosen) == len(unique) else f"a random sample of {len(chosen)} of"
        self.media_checked = f"{what} {len(unique)} images decoded"

    def report_facts(self) -> list[tuple[str, str]]:
        """Lines of the report above the label table (subclasses add their own)."""
        n_sub = len(np.unique(self.subjects))
        who = f"{n_sub} subjects" if n_sub < len(self) else "no subject ids: each image is its own group"
        facts = [*self.layout.items(), ("rows", f"{len(self)} usable ({who}); "
                                                f"{self.problems.count('skip')} left out of the protocol")]
        folds = self.folds() if len(self) else []
        facts.append(("folds", " | ".join(f"{f.name}: train {len(f.train)} test {len(f.test)}" for f in folds)
                      or "none"))
        facts.append(("media", self.media_checked))
        return facts

    def report(self):
        """The :class:`ssfbench.verify.Report` of this copy."""
        from ssfbench.verify import Report, label_counts

        return Report(dataset=self.name, root=str(self.root), facts=self.report_facts(),
                      labels=label_counts(self.label_names, self.targets), problems=self.problems)


__all__ = ["RealFrames"]
