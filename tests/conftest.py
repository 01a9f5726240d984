"""Shared fixtures: the repository root, and a real installed method plugin (a temporary
dist-info on ``sys.path`` declaring ``ssfbench.methods`` entry points), removed again afterwards."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: the repository checkout the tests run from
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """``install_plugin(dist, package, source, entry_points)`` writes ``package/__init__.py`` with
    ``source`` and a ``<dist>-<version>.dist-info`` declaring ``entry_points`` (name -> "module:attr")
    in the ``ssfbench.methods`` group, puts them on ``sys.path`` and resets the method registry;
    returns the folder. Everything is undone after the test."""
    from ssfbench.api.registry import METHODS

    packages: list[str] = []

    def install(dist: str, package: str, source: str, entry_points: dict[str, str], version: str = "0.1") -> Path:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            "[ssfbench.methods]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items()))
        monkeypatch.syspath_prepend(str(tmp_path))
        packages.append(package)
        METHODS.reset()
        return tmp_path

    yield install
    METHODS.reset()
    for package in packages:
        sys.modules.pop(package, None)


@pytest.fixture
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch hub and Hugging Face caches (offline by environment too), so no test reaches the
    network for weights; returns torch hub's ``checkpoints`` folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder
