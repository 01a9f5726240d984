"""The ``python`` method: an encoder given in Python to ``ssfbench.evaluate``, frozen.

Its config names the encoder (``name``, the row's name), identifies it (``digest``, see
:func:`ssfbench.api.wrapped.encoder_digest`) and records its preprocessing and width; the encoder itself
lives in the calling process (:func:`ssfbench.api.wrapped.register_encoder`). Its checkpoint holds no
weights, only the encoder's embeddings of the fixed probe batch, which are compared with the live
encoder's whenever the run is reused (a changed encoder is refused, never given old caches). Runs of
this method are made by ``ssfbench.evaluate``; ``ssfbench run --method python`` cannot make one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from ssfbench.api.method import MethodConfig
from ssfbench.api.preprocess import Preprocess
from ssfbench.api.wrapped import FrozenModuleMethod, registered_encoder, same_embeddings
from ssfbench.errors import UserError


@dataclass
class PythonConfig(MethodConfig):
    """Set by ``ssfbench.evaluate``: ``name`` (the row's name), ``digest`` (what identifies the
    encoder), ``embed_dim`` (its output width) and ``preprocess`` (``Preprocess.to_json()``)."""

    name: str = ""
    digest: str = ""
    embed_dim: int = 0
    preprocess: str = ""


class PythonEncoder(FrozenModuleMethod):
    """A frozen encoder given in Python (``ssfbench.evaluate``)."""

    name = "python"
    summary = "an encoder given in Python to ssfbench.evaluate(model, name=...), frozen (not a command-line method)"
    Config = PythonConfig
    identity_settings = ("name", "digest", "embed_dim", "preprocess")

    def build(self) -> None:
        if not self.config.digest:
            raise ValueError("it wraps an encoder given in Python: call ssfbench.evaluate(encoder, name=...)")
        live = registered_encoder(self.config.digest)
        self._probe = live.probe
        if isinstance(live.encoder, torch.nn.Module):
            self.module = live.encoder
        else:
            object.__setattr__(self, "module", live.encoder)  # a plain callable: no module to track

    def default_preprocess(self) -> Preprocess:
        return Preprocess.from_dict(json.loads(self.config.preprocess))

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def display_name(self) -> str:
        return self.config.name

    def get_extra_state(self) -> dict[str, Any]:
        """The encoder's embeddings of the fixed probe batch when the run was made."""
        return {"probe": self._probe}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Refuse a run made by another encoder under the same digest (its probe embeddings differ)."""
        stored = state.get("probe") if isinstance(state, dict) else None
        if not isinstance(stored, torch.Tensor) or not same_embeddings(stored, self._probe):
            raise UserError(f"encoder {self.config.name!r} (digest {self.config.digest[:12]}...) gives other embeddings "
                            "of the probe batch than when its run was made: it changed in a way its digest does not "
                            "see; pass ssfbench.evaluate a new identity= for it (or remove the run's folder)")
