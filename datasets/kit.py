"""The adapter kit: what the adapters over users' copies of the real datasets share, public and
importable from one place (``from ssfbench.datasets.kit import RealFrames, ...``; the built-in
adapters and out-of-tree dataset plugins alike). docs/adding-a-dataset.md walks through a toy
adapter built from it. Each concern has its own (private) module; import the names from here:

* :mod:`~ssfbench.datasets._problems`: :class:`Problems` collects everything wrong with a copy
  (errors that make it unusable, rows skipped from the protocol, notes) instead of stopping at the
  first; ``open`` raises the first error as a one-line :class:`~ssfbench.errors.UserError` and
  warns about skipped rows, ``verify`` lists them all.
* :mod:`~ssfbench.datasets._files`: the user's root, case-insensitive lookup of the folders and
  files of an official layout, label files read as text and rows.
* :mod:`~ssfbench.faces.images`: face crops (read an image with Pillow, JPEG decoded at a reduced
  scale when that is enough; cut a square face box from the dataset's box or landmarks, else the
  centre square; resize), image checks and the decoding thread pool.
* :mod:`~ssfbench.datasets._digest`: fingerprints (:class:`Digest`) and order-independent hash splits.
* :mod:`~ssfbench.datasets._folds`: the shipped standard fold lists.
* :mod:`ssfbench.api.settings`: adapter options (:class:`Option`, :func:`resolve_options`), shared with
  every dataset and with methods' settings.
* :mod:`~ssfbench.datasets._real_frames`: :class:`RealFrames`, the base of the labelled adapters
  (BP4D, DISFA, EmotioNet, AffectNet), and the face-crop options every one of them declares
  (``CROP_OPTION``, ``MARGIN_OPTION``).
"""

from __future__ import annotations

from ssfbench.api.settings import Option, resolve_options
from ssfbench.datasets._digest import Digest, stable_fraction
from ssfbench.datasets._files import (
    IMAGE_SUFFIXES,
    MAX_FAN_OUT,
    VIDEO_SUFFIXES,
    descend,
    entries,
    find_child,
    find_parent_of,
    find_path,
    numbered_images,
    read_rows,
    read_text,
    relative,
    require_root,
    subdirs,
)
from ssfbench.datasets._folds import load_parts, standard_folds
from ssfbench.datasets._problems import SEVERITIES, DatasetWarning, Problem, Problems
from ssfbench.datasets._real_frames import CROP_OPTION, MARGIN_OPTION, NO_FACE, RealFrames
from ssfbench.faces.images import (
    THREADS,
    Box,
    center_box,
    check_image,
    crop_resize,
    read_aligned,
    read_face,
    sample_indices,
    square_box,
    thread_map,
)

__all__ = [
    "Digest", "stable_fraction",
    "THREADS", "Box", "center_box", "check_image", "crop_resize", "read_aligned", "read_face", "sample_indices",
    "square_box", "thread_map",
    "IMAGE_SUFFIXES", "MAX_FAN_OUT", "VIDEO_SUFFIXES", "descend", "entries", "find_child", "find_parent_of",
    "find_path", "numbered_images", "read_rows", "read_text", "relative", "require_root", "subdirs",
    "load_parts", "standard_folds",
    "SEVERITIES", "DatasetWarning", "Problem", "Problems",
    "RealFrames", "CROP_OPTION", "MARGIN_OPTION", "NO_FACE",
    "Option", "resolve_options",
]
