"""Rows that are no single encoder's run: the ensemble of finished runs along the method's ensemble
axis (:func:`ensemble`, the paper's "Ranking Ensemble") and the synthetic benchmark's ceiling, the
probe on the true AU intensities (:func:`calibrate`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ssfbench import version
from ssfbench.api.checkpoint import load_checkpoint
from ssfbench.api.dataset import LabeledFrames, TrueIntensities
from ssfbench.api.registry import get_method
from ssfbench.errors import UserError
from ssfbench.evaluation.protocol import check_labels, probe_dataset
from ssfbench.pipeline.provenance import rerun_info, result_record
from ssfbench.pipeline.runner import embeddings, probe_device
from ssfbench.pipeline.spec import RunSpec, open_dataset
from ssfbench.results.records import Result, RunOutput
from ssfbench.results.store import write_leaderboards, write_result
from ssfbench.runtime.layout import OutputLayout


def calibrate(spec: RunSpec) -> list[Result]:
    """The synthetic benchmark's ceiling: the same probe on the true AU intensities of every frame.
    Written as results (source and role ``ceiling``) so the tables show it beside the methods."""
    results = []
    layout = OutputLayout(spec.out)
    for name in spec.datasets:
        ds = open_dataset(name, spec)
        if not isinstance(ds, TrueIntensities):
            raise UserError(f"dataset {name!r} has no true AU intensities; only synthetic datasets can be calibrated")
        check_labels(ds)
        scores = probe_dataset(np.asarray(ds.intensities, dtype=np.float32), ds, seed=spec.seed)
        config_hash = hashlib.sha256(f"ceiling|{ds.fingerprint()}|{version.PROTOCOL_VERSION}".encode()).hexdigest()
        result = result_record(run_id=f"ceiling-{name}-{config_hash[:8]}-seed{spec.seed}", config_hash=config_hash,
                               method="true-intensities", variant="", display_name="Ceiling: true AU intensities",
                               backbone="", source="ceiling", role="ceiling", dataset=ds, seed=spec.seed,
                               data_seed=spec.data_seed, image_size=spec.image_size, scores=scores,
                               rerun=rerun_info(spec))
        write_result(layout.results.root, result)
        results.append(result)
    write_leaderboards(layout.results.root)
    return results


def ensemble(members: list[RunOutput], spec: RunSpec) -> list[Result]:
    """The ensemble row of several finished runs that differ only in the method's ensemble axis
    (``Method.ensemble_axis``; the paper's "Ranking Ensemble" over k): per dataset, the concatenation
    of the members' cached embeddings (in member order) through the same probe. ``spec`` gives the
    output folder, device, seed and cache policy. Writes and returns one result per dataset,
    identified by a config hash derived from the members' and listing their run ids."""
    if len(members) < 2:
        raise UserError(f"an ensemble needs at least 2 member runs, got {len(members)}")
    by_dataset: dict[str, list[Result]] = {}
    for member in members:
        if member.checkpoint is None:
            raise UserError(f"ensemble: run {member.run_id} keeps one encoder per fold; it cannot be ensembled")
        for r in member.results:
            by_dataset.setdefault(r.dataset, []).append(r)
    layout = OutputLayout(spec.out)
    out = []
    for name, rows in by_dataset.items():
        if len(rows) != len(members):
            raise UserError(f"ensemble: dataset {name!r} was evaluated by {len(rows)} of the {len(members)} members")
        ds = open_dataset(name, dataclasses.replace(spec, image_size=rows[0]["image_size"],
                                                    data_seed=rows[0]["data_seed"]))
        started = time.time()
        parts = []
        for r in rows:
            method, digest = load_checkpoint(Path(r["checkpoint"]))
            if digest != r["checkpoint_sha256"]:
                raise UserError(f"{r['checkpoint']}: checkpoint changed since run {r.run_id} wrote its result; rerun it")
            parts.append(embeddings(method, digest, ds, spec, Path(r["cache"]), collective=False))
        axis = get_method(rows[0].method).ensemble_axis
        if axis is None:
            raise UserError(f"ensemble: method {rows[0].method!r} declares no ensemble axis")
        x = np.concatenate(parts, axis=1)
        embed_s = time.time() - started
        started = time.time()
        scores = probe_dataset(x, ds, seed=rows[0].seed, device=probe_device(spec))
        result = _ensemble_record(rows, axis, ds, scores, x.shape[1],
                                  {"embed_s": round(embed_s, 2), "probe_s": round(time.time() - started, 2)},
                                  rerun=rerun_info(spec), faces_folder=layout.run_dir(rows[0].run_id))
        write_result(layout.results.root, result)
        out.append(result)
    write_leaderboards(layout.results.root)
    return out


def _ensemble_record(rows: list[Result], axis: str, ds: LabeledFrames, scores: dict[str, Any], dim: int,
                     timing: dict[str, float], **extra: Any) -> Result:
    """The result of an ensemble of the member results ``rows`` (one dataset) along ``axis``."""
    values = [r["method_config"][axis] for r in rows]
    first = rows[0]
    variant = " ".join([f"{axis}=" + "+".join(str(v) for v in values), *first.get("variant_settings", [])])
    member_hashes = [r.config_hash for r in rows]
    config_hash = hashlib.sha256(json.dumps({"ensemble": member_hashes}).encode()).hexdigest()
    base_name = get_method(first.method).ensemble_display_name()
    slug = "-".join(p.replace("=", "").replace("+", "_") for p in variant.split())
    run_id = f"{first.method}-ensemble-{slug}-{first.backbone}-{config_hash[:8]}-seed{first.seed}"
    return result_record(
        run_id=run_id, config_hash=config_hash, method=first.method, variant=variant,
        display_name=base_name, backbone=first.backbone, source="ssfbench", role=first.role,
        dataset=ds, seed=first.seed, data_seed=first["data_seed"], image_size=first["image_size"], scores=scores,
        ensemble={"members": [r.run_id for r in rows], "member_config_hashes": member_hashes,
                  "member_checkpoint_sha256": [r["checkpoint_sha256"] for r in rows],
                  "caches": [r["cache"] for r in rows], axis: values},
        variant_settings=first.get("variant_settings", []), n_rows=len(ds), embed_dim=int(dim), timing=timing,
        **({"recipe": first["recipe"]} if first.get("recipe") is not None else {}), **extra,
    )
