"""Reading weight files without running their code.

A ``.pt``/``.pth`` file is a pickle: unpickling it can call any Python function the file names
(``os.system`` included). Every weight file ssfbench reads (``--weights``, ``--pretrained PATH``,
checkpoints, a run's resume state ``last.pt``) goes through :func:`read_torch_file`, which promises:

* the file is read with ``torch.load(weights_only=True)``: tensors, containers, numbers, strings and
  the few plain-data types of :data:`SAFE_GLOBALS` (numpy arrays and scalars, ``argparse.Namespace``
  of the authors' training checkpoints); nothing the file names is called;
* a file that needs anything else is refused with one :class:`~ssfbench.errors.UserError` line that
  names the file and the first Python object it would create, and says how to opt in
  (``--trust-weights``) or convert it once (``ssfbench weights convert``);
* only under :func:`trusting` (the CLI's ``--trust-weights``) is such a file unpickled in full;
* a ``.safetensors`` file (what ``ssfbench weights convert`` writes) holds no code at all and is read
  with :mod:`safetensors`; the plain-data structure around its tensors (an ssfbench checkpoint's
  record, the authors' ``state_dict_model`` nesting) travels in its metadata and is rebuilt.

See ``docs/security.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssfbench.errors import UserError

#: the command-line flag that lets a file's pickled Python objects be created (one owner of its name)
TRUST_FLAG = "--trust-weights"
#: the metadata key of a converted ``.safetensors`` file: the JSON structure around its tensors
STRUCTURE_KEY = "ssfbench.structure"
#: the suffix of a code-free weights file
SAFETENSORS_SUFFIX = ".safetensors"


def _numpy_globals() -> list[Any]:
    """numpy's array and scalar reconstructors under the names numpy 1 and numpy 2 pickle them with.
    They only build arrays; an object array's items are unpickled by the same restricted reader."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy.(_)core.multiarray._reconstruct
    scalar = np.float64(0).__reduce__()[0]  # numpy.(_)core.multiarray.scalar
    out: list[Any] = [np.ndarray, np.dtype, reconstruct, scalar]
    out += [type(np.dtype(t)) for t in ("uint32", "int64", "float64", "float32", "int32", "bool", "uint8", "O")]
    out += [(reconstruct, "numpy.core.multiarray._reconstruct"), (scalar, "numpy.core.multiarray.scalar")]
    return out


#: the plain-data types a weights file may hold beyond torch's own allowlist
SAFE_GLOBALS: list[Any] = [argparse.Namespace, *_numpy_globals()]

class UnsafeFileError(UserError):
    """A file refused because reading it would create pickled Python objects (run code)."""


_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("ssfbench_trust_weights", default=False)


@contextlib.contextmanager
def trusting(trust: bool = True) -> Iterator[None]:
    """Within the block, weight files whose pickles name other Python objects are unpickled in full
    (``--trust-weights``); outside it (the default) they are refused."""
    token = _TRUSTED.set(bool(trust))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def trusted() -> bool:
    """Whether the current code runs under :func:`trusting` (``--trust-weights``)."""
    return _TRUSTED.get()


def convert_command(path: Path) -> str:
    """The one-time conversion that makes ``path`` load without ``--trust-weights``."""
    return f"ssfbench weights convert {path} {TRUST_FLAG} --out {Path(path).with_suffix(SAFETENSORS_SUFFIX)}"


def unsafe_message(path: Path, what: str, detail: str, hint: str = "") -> str:
    """The one line that refuses a file whose pickle would create Python objects (run code)."""
    return (f"{path}: this {what} holds pickled Python objects ({detail}) that would run code when loaded; "
            f"if you trust its source, add {TRUST_FLAG}, or convert it once with `{convert_command(path)}` "
            f"and use the .safetensors file{hint}")


def _unsupported_global(exc: BaseException) -> str:
    """The first global torch's restricted unpickler refused, from its message."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:
        return found.group(1)
    found = re.search(r"Unsupported operand \S+|Unsupported class \S+", str(exc))
    return found.group(0) if found else "an object torch's weights-only reader does not allow"


def read_torch_file(path: Path, what: str, *, map_location: str | torch.device = "cpu", hint: str = "") -> Any:
    """The contents of the PyTorch file (or ``.safetensors`` file) at ``path``, read without running its
    code (see the module docstring). A missing or unreadable file, or one that needs trust that was not
    given, is one :class:`UserError` naming it (``what`` names the role, ``hint`` is appended to the
    refusal, e.g. how to start over)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_safetensors(path, what, map_location=map_location)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise UserError(f"{path}: not a readable PyTorch {what} (UnpicklingError)") from None
        if not trusted():
            raise UnsafeFileError(unsafe_message(path, what, _unsupported_global(exc), hint)) from None
    except Exception as exc:  # noqa: BLE001 - any other failure means the file is not usable
        raise UserError(f"{path}: not a readable PyTorch {what} ({type(exc).__name__})") from None
    return _read_trusted(path, what, map_location)


def _read_trusted(path: Path, what: str, map_location: str | torch.device) -> Any:
    """``torch.load`` in full (the user trusts the file): a class the file needs that cannot be
    imported is one line naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise UserError(f"{path}: {TRUST_FLAG}: the {what} needs Python code that is not importable here "
                        f"({exc}); load it where that code is and save its state_dict()") from None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: not a readable PyTorch {what} ({type(exc).__name__})") from None


# ---- safetensors -------------------------------------------------------------------------------------


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor], dropped: list[str]) -> Any:
    """``obj`` as JSON with every tensor replaced by ``{"__tensor__": key}`` (its key in ``tensors``);
    what is neither (a pickled object) is left out and its place named in ``dropped``."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, torch.nn.Module):
        return _split(obj.state_dict(), prefix, tensors, dropped)
    if isinstance(obj, argparse.Namespace):
        return _split(vars(obj), prefix, tensors, dropped)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return _split(torch.from_numpy(np.ascontiguousarray(obj)), prefix, tensors, dropped)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            part = _split(value, f"{prefix}/{key}" if prefix else str(key), tensors, dropped)
            if part is not _DROPPED:
                out[str(key)] = part
        return out
    if isinstance(obj, (list, tuple)):
        items = [_split(v, f"{prefix}/{i}", tensors, dropped) for i, v in enumerate(obj)]
        return [v for v in items if v is not _DROPPED]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    dropped.append(f"{prefix or '<top>'} ({type(obj).__name__})")
    return _DROPPED


_DROPPED = object()


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`_split`."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def write_safetensors(payload: Any, out: Path) -> list[str]:
    """Write ``payload`` (a state dict, a checkpoint dict, a module) as ``out`` (``.safetensors``):
    its tensors, and its plain-data structure as metadata. Returns what was left out (entries that are
    neither tensors nor plain data), each as ``path (type)``."""
    from safetensors.torch import save_file

    from ssfbench.runtime.fileio import atomic_write_bytes

    tensors: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    structure = _split(payload, "", tensors, dropped)
    metadata = {STRUCTURE_KEY: json.dumps(structure if structure is not _DROPPED else None)}
    atomic_write_bytes(Path(out), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return dropped


def read_safetensors(path: Path, what: str, *, map_location: str | torch.device = "cpu") -> Any:
    """A ``.safetensors`` file's contents: the structure :func:`write_safetensors` recorded with its
    tensors put back, or the flat ``{name: tensor}`` dict of a file written elsewhere."""
    from safetensors import safe_open

    device = str(map_location)
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
            metadata = f.metadata() or {}
        structure = json.loads(metadata[STRUCTURE_KEY]) if STRUCTURE_KEY in metadata else None
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not usable
        raise UserError(f"{path}: not a readable safetensors {what} ({type(exc).__name__})") from None
    return tensors if structure is None else _join(structure, tensors)


__all__ = ["UnsafeFileError", "SAFE_GLOBALS", "SAFETENSORS_SUFFIX", "TRUST_FLAG", "convert_command", "read_safetensors",
           "read_torch_file", "trusted", "trusting", "unsafe_message", "write_safetensors"]
